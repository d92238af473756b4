"""Training a model into a run directory with ``fit``: checkpoints, resume, TensorBoard summaries
(``tfvae/summaries.py``) and the execution settings (XLA, steps per execution, mixed precision,
``tf.distribute``).

The directory's files belong to :class:`tfvae.runs.RunDirectory`; ``--resume`` continues a killed
run from ``checkpoints/last.keras`` with its optimizer state.
"""

import contextlib
import math
import shutil
import sys
import tempfile

import keras
import tensorflow as tf

from tfvae import data as datasets
from tfvae import options
from tfvae.checks import (MAX_INT64, check_choice, check_image_size, check_int, check_labels,
                          check_number, check_seed)
from tfvae.errors import InputError
from tfvae.interruption import Interrupted, stop_on_signals
from tfvae.layers.registries import BODIES, unit_interval
from tfvae.models import model_class
from tfvae.runs import DATA_CHECKSUM, RunDirectory, check_dataset_is_there
from tfvae.storage import write_atomic
from tfvae.training import distribute
from tfvae.training.callbacks import RunCheckpoint
from tfvae.training.optimizers import make_optimizer, optimizer_steps
from tfvae.training.execution import (dtype_policy, global_dtype_policy, measure_xla,
                                      nearest_divisor, resolve_jit_compile, xla_figures)
from tfvae.training.settings import (check_model_size_settings, check_resume_epochs,
                                     check_resume_settings, check_same_data,
                                     normalized_data_config)
from tfvae.training.stops import TrainingDiverged, TrainingInterrupted, diverged_message
from tfvae.training.summaries import EpochSummaries

_TRAIN = options.TRAIN_DEFAULTS
# Test images the latent diagnostics of each epoch are taken on: enough for the variance of the
# posterior means, a small share of the epoch's time.
_DIAGNOSTIC_EXAMPLES = 2000


def train(run_dir, *, model=None, model_config=None, data_config=None, epochs=None,
          batch_size=None, optimizer=None, learning_rate=None, seed=None, resume=False,
          overwrite=False, verbose=1, strategy="default", mixed_precision=None,
          jit_compile="auto", steps_per_execution=_TRAIN["steps_per_execution"],
          kl_warmup_epochs=None, conditional=None, projector=None, callbacks=()):
    """Train a model into ``run_dir`` and return the final model.

    ``model`` is a name from the model registry (``tfvae.models.MODELS``, "vae" by default);
    ``model_config``
    holds its constructor arguments (the image shape and likelihood come from the data when
    absent); ``data_config`` holds ``tfvae.data.load_dataset`` arguments. ``batch_size``,
    ``optimizer``, ``learning_rate`` and ``seed`` default to ``tfvae.options.TRAIN_DEFAULTS``.
    Every argument is checked before anything is written, so a bad one leaves ``run_dir`` as it
    was. ``epochs`` is the total (10 when not given). ``kl_warmup_epochs`` sets the VAE's
    ``kl_warmup_steps`` to that many epochs of steps. ``resume`` continues the run in
    ``run_dir``: only ``epochs`` may differ from what it was started with (config.json then
    records the new total); any other setting given must equal the run's. ``conditional``
    trains a conditional model (``num_classes`` from the dataset's labels) on (image, label)
    pairs. ``verbose``: 0
    prints nothing, 1 Keras's progress bar and a line per epoch, 2 the lines alone (for logs).
    Raises ``TrainingDiverged`` if the loss turns NaN.

    Speed and scale (see ``docs/distributed.md``):

    - ``strategy``: a name from ``tfvae.options.STRATEGIES`` or a ``tf.distribute.Strategy``;
      the model is built and compiled under its scope and ``batch_size`` is the global batch.
    - ``mixed_precision``: None, "float16" or "bfloat16" compute with float32 variables and a
      float32 ELBO; float16 adds dynamic loss scaling. Kept for the run: a resume reuses it.
    - ``jit_compile``: True, False, or "auto": XLA-compile each step when training on one device
      (Keras cannot compile a multi-replica step whole) and the run is long enough for the
      compile time to be repaid on this machine. The first run of a model on a machine times
      its step both ways for a few seconds and keeps the figures
      (``tfvae.training.execution.xla_figures``); runs under ``XLA_NEVER_BELOW`` examples are never
      compiled.
    - ``steps_per_execution``: training steps per call into TensorFlow, rounded to the nearest
      divisor of the steps per epoch (by ratio) so that epochs end where an execution ends.

    TensorBoard (``tfvae/summaries.py``): each epoch's scalars, samples, reconstructions, the 2-D
    manifold and the KL of each latent dimension go to the run's ``tensorboard/``. ``projector``
    (default False; kept for the run, and a resume may turn it on) writes the test set's latent
    means for the Embedding Projector to ``tensorboard/projector/`` once training ends.

    ``callbacks``: more Keras callbacks, called after the run's own at each event.
    """
    run = RunDirectory(run_dir)
    strategy_name = strategy if isinstance(strategy, str) else type(strategy).__name__
    # First: a multi-worker strategy must configure TensorFlow before anything else uses it.
    strategy = distribute.make_strategy(strategy)
    writer = distribute.is_writer(strategy)
    with contextlib.ExitStack() as held:
        if writer:
            # Under the lock: what the directory holds cannot change while it is checked.
            held.enter_context(run.writer(resume=resume, overwrite=overwrite))
        held.enter_context(stop_on_signals())
        given_train = {"batch_size": batch_size, "optimizer": optimizer,
                       "learning_rate": learning_rate, "seed": seed,
                       "kl_warmup_epochs": kl_warmup_epochs, "conditional": conditional}
        data_config = normalized_data_config(data_config or {})
        if resume:
            config = run.read_config()
            check_resume_settings(config, model, model_config or {}, data_config, given_train,
                                  mixed_precision)
            if data_config.get("name") is not None:  # the run's data where it is now
                config["data"]["name"] = data_config["name"]
            check_dataset_is_there(config["data"])
            if epochs is not None:
                config["train"]["epochs"] = epochs
            mixed_precision = config["train"].get("mixed_precision")
            if projector:  # an output, not a setting of the training: a resume may ask for it
                config["train"]["projector"] = True
        else:
            model = model or "vae"
            cls = model_class(model)
            if cls.needs_example_index:
                raise InputError("--model", "a model that trains on batches of images (MCEM keeps "
                                 "a chain per example: `tfvae reproduce fig3` trains it)",
                                 repr(model))
            train_settings = {key: _TRAIN.get(key) if value is None else value
                              for key, value in given_train.items()}
            config = {
                "model_type": model,
                "model": dict(model_config or {}),
                "data": {"name": "mnist", **data_config},
                "train": {"epochs": _TRAIN["epochs"] if epochs is None else epochs,
                          **train_settings, "mixed_precision": mixed_precision,
                          "projector": bool(_TRAIN["projector"] if projector is None
                                            else projector)},
            }
        # Plain ints from here on (numpy's are accepted): config.json and Keras's seeding take them.
        config["train"]["epochs"] = check_int("--epochs", config["train"]["epochs"])
        config["train"]["batch_size"] = check_int("--batch-size", config["train"]["batch_size"])
        config["train"]["seed"] = check_seed("--seed", config["train"]["seed"])
        policy = dtype_policy(mixed_precision)
        if jit_compile not in ("auto", True, False):
            raise InputError("--jit-compile", "auto, on (True) or off (False)", repr(jit_compile))
        check_int("--steps-per-execution", steps_per_execution)
        size = config["data"].get("image_size")
        if size is not None and config["model"].get("architecture") in BODIES:
            # Before reading a folder of images; an unknown name is the model's to refuse.
            BODIES.get(config["model"]["architecture"]).check_image_shape(size, "--image-size")
        check_model_size_settings(config, size and (*check_image_size("--image-size", size), 1))
        dataset = datasets.load_dataset(**{**config["data"], "seed": config["train"]["seed"]})
        config["data"]["binarize"] = dataset.binarize
        config[DATA_CHECKSUM] = check_same_data(config.get(DATA_CHECKSUM), dataset)
        for key, split in (("train_examples", dataset.x_train), ("test_examples", dataset.x_test)):
            if (config["data"].get(key) or 0) > len(split):
                if writer:  # even with verbose=0: the run is not what was asked for
                    print(f"tfvae: --{key.replace('_', '-')} {config['data'][key]} is more than "
                          "the "
                          f"{len(split)} the dataset has; using {len(split)}", file=sys.stderr)
                config["data"][key] = len(split)
        model_kwargs = {"image_shape": list(dataset.image_shape), "likelihood": dataset.likelihood,
                        **config["model"]}
        check_model_size_settings(config, dataset.image_shape)
        if unit_interval(model_kwargs["likelihood"]):
            datasets.validate_images(dataset.x_train, argument="--dataset", bernoulli=True)
        batch = config["train"]["batch_size"]
        full_batches = isinstance(strategy, tf.distribute.TPUStrategy)  # TPUs need static shapes
        steps = datasets.steps_per_epoch(len(dataset.x_train), batch, full_batches)
        warmup_epochs = config["train"].get("kl_warmup_epochs")
        if warmup_epochs:
            model_kwargs["kl_warmup_steps"] = check_int("--kl-warmup-epochs", warmup_epochs,
                                                        maximum=MAX_INT64 // steps) * steps
        # A conditional model trains and is tested on (image, label) pairs.
        train_labels = test_labels = None
        if config["train"].get("conditional") or model_kwargs.get("num_classes"):
            model_kwargs["num_classes"], train_labels, test_labels = _class_labels(
                dataset, model_kwargs.get("num_classes"))
        config["model"] = model_kwargs
        config["train"]["strategy"] = strategy_name

        keras.utils.set_random_seed(config["train"]["seed"])
        with strategy.scope(), global_dtype_policy(policy):
            if resume:
                vae = run.load_model("last")
                # The checkpoint is written atomically and holds the optimizer's step count: the
                # epochs it completed follow from it, whatever else a kill left half-updated.
                initial_epoch = optimizer_steps(vae) // steps
                if check_resume_epochs(config["train"]["epochs"], initial_epoch, run.read_state()):
                    if verbose and writer:
                        print(f"tfvae: the run has finished its {initial_epoch} epochs; nothing to "
                              "do (a larger --epochs trains more)", file=sys.stderr)
                    return vae
                # The same optimizer object, so its state carries over.
                optimizer = vae.optimizer
            else:
                try:
                    vae = model_class(config["model_type"])(**model_kwargs,
                                                            seed=config["train"]["seed"])
                except InputError:
                    raise
                except (TypeError, ValueError) as exc:  # a setting the model does not take
                    if "keyword argument" not in str(exc):
                        raise
                    raise InputError("--model", f"settings that {config['model_type']} takes",
                                     str(exc).split(": ", 1)[-1]) from None
                # What the model resolved itself is recorded as it has it: the KL estimator becomes
                # "sampled" where a prior or posterior has no closed-form KL.
                resolved = vae.get_config()
                config["model"].update({key: resolved[key] for key, value in config["model"].items()
                                        if isinstance(value, str)
                                        and isinstance(resolved.get(key), str)})
                initial_epoch = 0
                optimizer = make_optimizer(config["train"]["optimizer"],
                                           config["train"]["learning_rate"])
            remaining = (config["train"]["epochs"] - initial_epoch) * len(dataset.x_train)
            per_execution = nearest_divisor(steps, steps_per_execution)
            # The model drew its weights when built: measuring XLA here, which builds copies of it,
            # leaves the run as it would be without.
            if resume and jit_compile == "auto" and "jit_compile" in config["train"]:
                jit = config["train"]["jit_compile"]  # the run's numerics: resumed exactly
            else:
                jit = resolve_jit_compile(jit_compile, remaining, measure=lambda: _xla_figures(
                    config, model_kwargs, dataset, train_labels, per_execution))
            config["train"]["jit_compile"] = bool(jit)
            vae.compile(optimizer=optimizer, jit_compile=jit, steps_per_execution=per_execution)
        if config["train"].get("projector") and not vae.has_encoder:
            raise InputError("--projector", "a model with an encoder (the projector shows the "
                             "means "
                             "of q(z|x))", f"model type {config['model_type']!r}")
        best = -math.inf
        if writer and resume:
            run.remove_stale()
            run.write_config(config)
            rows = run.truncate_metrics(initial_epoch)
            best = max((r["test_elbo"] for r in rows if r["test_elbo"] is not None), default=best)
        if writer and not resume:
            run.create(config)
        # Non-chief workers must save too (reading distributed variables is collective): elsewhere.
        out = run if writer else RunDirectory(tempfile.mkdtemp(prefix="tfvae-worker-"))
        verbose = verbose if writer else 0
        if verbose:
            print(f"tfvae: dataset {dataset.name}, binarization {dataset.binarize}, "
                  f"{len(dataset.x_train)} train / {len(dataset.x_test)} test examples; "
                  f"{strategy.num_replicas_in_sync} replica(s), "
                  f"XLA {'on' if vae.jit_compile else 'off'}, "
                  f"{vae.steps_per_execution} steps per execution"
                  + (f", mixed precision {mixed_precision}" if mixed_precision else ""))

        # Grey levels go to the model, which binarizes each batch on the device.
        vae.dynamic_binarization = dataset.binarize == "dynamic"
        train_data = datasets.make_train_stream(dataset.x_train, batch_size=batch,
                                                seed=config["train"]["seed"],
                                                first_epoch=initial_epoch,
                                                drop_remainder=full_batches, labels=train_labels)
        test_data = datasets.make_pipeline(dataset.x_test, batch_size=batch,
                                           drop_remainder=full_batches, labels=test_labels)
        checkpoint = RunCheckpoint(out, len(dataset.x_train), config["train"]["epochs"],
                                   best_elbo=best, epochs_completed=initial_epoch,
                                   print_lines=verbose in (1, 2),
                                   diagnostic_images=(dataset.x_test[:_DIAGNOSTIC_EXAMPLES]
                                                      if vae.has_encoder else None),
                                   diagnostic_labels=(None if test_labels is None
                                                      else test_labels[:_DIAGNOSTIC_EXAMPLES]))
        summaries = EpochSummaries(out.tensorboard_dir,
                                   test_images=dataset.x_test if vae.has_encoder else None,
                                   test_labels=test_labels,
                                   kl_per_dimension=lambda: checkpoint.diagnostics.get(
                                       "kl_per_dimension"))
        try:
            try:
                vae.fit(
                    train_data,
                    steps_per_epoch=steps,
                    shuffle=False,  # the stream shuffles
                    validation_data=test_data,
                    epochs=config["train"]["epochs"],
                    initial_epoch=initial_epoch,
                    verbose=1 if verbose == 1 else 0,
                    callbacks=[checkpoint, summaries, *callbacks],
                )
            except Interrupted as stop:
                # The epoch in progress is dropped: last.keras and state.json are those of the
                # last epoch that finished, from which --resume continues exactly.
                out.write_state({**checkpoint.state(), "status": "interrupted"})
                raise TrainingInterrupted(stop.signum, run.path, checkpoint.epochs_done,
                                          config["train"]["epochs"]) from None
            if checkpoint.diverged:
                raise TrainingDiverged(diverged_message(run, checkpoint.epochs_done + 1))
            write_atomic(out.checkpoint_path("model"), vae.save)
            if writer and config["train"].get("projector"):
                from tfvae.applications.projector import write_run_projector

                # The run owns tensorboard/: a resumed run replaces its projector.
                shown = write_run_projector(vae, run.path, run.projector_dir, overwrite=True,
                                            test_examples=config["data"].get("test_examples"),
                                            argument="--projector")
                if verbose:
                    print(f"tfvae: projector: {shown['description']}, in {run.projector_dir}")
            out.write_state({**checkpoint.state(), "status": "finished"})
        finally:
            if not writer:
                shutil.rmtree(out.path, ignore_errors=True)
        return vae


def _xla_figures(config, model_kwargs, dataset, train_labels, steps_per_execution):
    """This machine's XLA figures for the run's model and step
    (``tfvae.training.execution.xla_figures``):
    measured once on fresh copies of the model over the first training batches, then cached."""
    batch = config["train"]["batch_size"]
    key = {"model_type": config["model_type"], "model": model_kwargs, "batch_size": batch,
           "optimizer": config["train"]["optimizer"], "binarize": config["data"]["binarize"],
           "steps_per_execution": steps_per_execution,
           "dtype_policy": keras.config.dtype_policy().name}

    def build(jit_compile):
        model = model_class(config["model_type"])(**model_kwargs, seed=0)
        model.dynamic_binarization = config["data"]["binarize"] == "dynamic"
        model.compile(optimizer=make_optimizer(config["train"]["optimizer"],
                                               config["train"]["learning_rate"]),
                      jit_compile=jit_compile, steps_per_execution=steps_per_execution)
        return model

    def measure():
        head = slice(0, steps_per_execution * batch)
        data = datasets.make_train_stream(
            dataset.x_train[head], batch_size=batch,
            labels=None if train_labels is None else train_labels[head])
        return measure_xla(build, data, steps_per_execution, batch)

    return xla_figures(key, measure)


def _class_labels(dataset, num_classes=None):
    """``(num_classes, train labels, test labels)`` of a dataset for a conditional model, the
    labels checked against ``num_classes`` (by default one more than the largest label)."""
    if dataset.y_train is None or dataset.y_test is None:
        raise InputError("--conditional", "a dataset with class labels (mnist, tfds:NAME with "
                         "labels, an .npz with y_train and y_test)",
                         f"{dataset.name}, which has none")
    if num_classes is None:
        largest = max(check_labels("--dataset labels", y).max(initial=0)
                      for y in (dataset.y_train, dataset.y_test))
        num_classes = max(int(largest) + 1, 2)
    return (num_classes, check_labels("--dataset labels", dataset.y_train, num_classes),
            check_labels("--dataset labels", dataset.y_test, num_classes))
