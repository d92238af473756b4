"""Where training runs: a ``tf.distribute`` strategy by name, and which process writes the run.

- ``"default"``: no distribution, one device (a GPU if there is one, else the CPU).
- ``"mirrored"``: ``MirroredStrategy``, one replica per local GPU (the CPU when there is none).
- ``"multiworker"``: ``MultiWorkerMirroredStrategy`` over the hosts that ``TF_CONFIG`` names; every
  worker runs the same command, the chief (task 0 of type ``worker`` when the cluster has no
  ``chief``) writes the run directory and the others write to a temporary directory they delete.
- ``"tpu"``: ``TPUStrategy`` on the TPU that ``TPU_NAME`` names, or the local TPU VM.

The batch size is the global one: each step's batch is split over the replicas, and the VAE's
loss and noise are arranged so that the split does not change what is computed (``tfvae.noise``).
"""

import json
import os

import tensorflow as tf

from tfvae.errors import InputError, arg
from tfvae.options import STRATEGIES


def make_strategy(strategy="default"):
    """A ``tf.distribute.Strategy`` from its name, or ``strategy`` itself when it is one.

    Make it before anything else runs TensorFlow: ``multiworker`` configures the process's
    collective ops, which TensorFlow allows only at start-up.
    """
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy == "default":
        return tf.distribute.get_strategy()
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if strategy == "multiworker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if strategy == "tpu":
        return _tpu_strategy()
    raise InputError("strategy", f"one of {STRATEGIES} or a tf.distribute.Strategy",
                     repr(strategy))


def _check_tf_config():
    raw = os.environ.get("TF_CONFIG")
    expected = ('TF_CONFIG set to JSON such as {"cluster": {"worker": ["host1:port", '
                '"host2:port"]}, "task": {"type": "worker", "index": 0}}')
    argument = arg("strategy", "multiworker")
    if not raw:
        raise InputError(argument, expected, "no TF_CONFIG in the environment")
    try:
        config = json.loads(raw)
        config["cluster"], config["task"]["type"], config["task"]["index"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(argument, expected, f"TF_CONFIG={raw!r} ({exc})") from exc


def _tpu_strategy():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as exc:
        raise InputError(arg("strategy", "tpu"), "a TPU (set TPU_NAME, or run on a TPU VM)",
                         f"none found ({type(exc).__name__}: {exc})") from exc
    return tf.distribute.TPUStrategy(resolver)


def is_writer(strategy):
    """Whether this process writes the run directory: always, except non-chief workers."""
    return strategy.extended.should_checkpoint


def check_batch_size(strategy, batch_size, examples):
    """Refuse a ``batch_size`` whose first batch of ``examples`` the replicas of ``strategy``
    cannot share evenly: Keras builds the model from the mean of the replicas' first batches,
    which fails where they differ in size."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise InputError("batch_size", f"a multiple of the {replicas} replicas that train in "
                         "sync", batch_size)
    if examples < batch_size and examples % replicas:
        raise InputError("batch_size", f"at most the {examples} training examples, a first "
                         f"batch that the {replicas} replicas cannot share evenly", batch_size)


def _last_batch_leaves_a_replica_empty(strategy, examples, batch_size):
    """Whether the last, partial batch of ``examples`` has fewer than the replicas of
    ``strategy``, so that one would get no rows (its loss is NaN, and oneDNN's convolutions
    fail on them)."""
    return 0 < examples % batch_size < strategy.num_replicas_in_sync


def static_shapes(strategy):
    """Whether ``strategy`` needs every batch of one size (a TPU's compiled shapes)."""
    return isinstance(strategy, tf.distribute.TPUStrategy)


def full_batches(strategy, examples, batch_size):
    """Whether each epoch of ``examples`` drops its last, partial batch under ``strategy``: on a
    TPU (:func:`static_shapes`), and where a replica would get no rows of it."""
    return (static_shapes(strategy)
            or _last_batch_leaves_a_replica_empty(strategy, examples, batch_size))


def test_batches(strategy, batches, examples, batch_size):
    """``batches`` (a ``tf.data.Dataset`` of ``examples`` in batches of ``batch_size``, x or (x,
    ...) tuples), where the replicas of ``strategy`` cannot share its first batch evenly or one
    would get no rows of its last (see :func:`check_batch_size`), each
    cut to a multiple of the replicas, those left empty dropped: fewer examples than there are
    replicas go untested."""
    from tfvae.data.graph_checks import CHECKED, mark_checked

    replicas = strategy.num_replicas_in_sync
    if (min(examples, batch_size) % replicas == 0
            and not _last_batch_leaves_a_replica_empty(strategy, examples, batch_size)):
        return batches

    def cut(*batch):
        rows = tf.shape(batch[0])[0] // replicas * replicas
        return batch[0][:rows] if len(batch) == 1 else tuple(t[:rows] for t in batch)

    def has_rows(*batch):
        return tf.shape(batch[0])[0] > 0

    cut_batches = batches.map(cut).filter(has_rows)
    return mark_checked(cut_batches) if getattr(batches, CHECKED, False) else cut_batches


def one_step_per_execution(strategy, x):
    """Whether Keras must run one training step per call under ``strategy`` on ``x``: several
    fail under TensorFlow 2.21 and Keras 3 where more than one replica trains in sync (a
    placeholder left unfed in the loop of steps, keras-team/keras#19246), or where each worker
    reads only its part of ``x`` (:func:`reads_own_part`)."""
    return strategy.num_replicas_in_sync > 1 or reads_own_part(strategy, x)


def reads_own_part(strategy, x):
    """Whether each worker of ``strategy`` reads only its part of ``x``: a stream under
    ``multiworker`` with at least one file per worker."""
    from tfvae import data as datasets

    workers = (strategy.extended._num_workers
               if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else 1)
    return workers > 1 and datasets.is_stream(x) and x.parts >= workers


def training_batches(strategy, x, *, batch_size, seed, first_epoch=0, drop_remainder=False,
                     labels=None):
    """The endless training batches of ``x`` (``tfvae.data.make_train_stream``) for
    ``strategy``: under ``multiworker`` a streamed ``x`` is split by file, each worker reading
    only its part (by examples where it has fewer files than there are workers: every worker then
    reads all of it and Keras takes each one's share of the batches). Every worker's epoch is
    as many batches as one device's, so epoch ``e`` depends on the seed and ``e`` alone there
    too."""
    from tfvae import data as datasets
    from tfvae.data.pipelines import stream_epochs, train_stream_seed

    if not reads_own_part(strategy, x):
        return datasets.make_train_stream(x, batch_size=batch_size, seed=seed,
                                          first_epoch=first_epoch,
                                          drop_remainder=drop_remainder, labels=labels)
    datasets.make_train_stream(x, batch_size=batch_size, seed=seed)  # checks its arguments

    def worker_batches(context):
        return stream_epochs(x, batch_size=context.get_per_replica_batch_size(batch_size),
                             shuffle_seed=train_stream_seed(seed), first_epoch=first_epoch,
                             drop_remainder=drop_remainder, labels=labels,
                             shard=(context.input_pipeline_id, context.num_input_pipelines),
                             steps=datasets.steps_per_epoch(len(x), batch_size, drop_remainder))

    return strategy.distribute_datasets_from_function(worker_batches)
