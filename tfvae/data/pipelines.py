"""``tf.data`` pipelines of images, and the one binarization of arrays on the host.

Binarization draws a Bernoulli sample of grey levels in [0, 1]: inside graphs (a pipeline's
batches, a training step) with ``tfvae.noise.bernoulli``; for a fixed set drawn once (a static
binarization, a test set) with :func:`binarize`, from numpy, so it needs no TensorFlow.
"""

import numpy as np
import tensorflow as tf

from tfvae import noise
from tfvae.checks import check_int, check_labels, check_seed
from tfvae.data.graph_checks import mark_checked
from tfvae.data.streams import is_stream
from tfvae.data.validation import allows_missing, validate_examples
from tfvae.errors import InputError


def binarize(x, seed=0):
    """One Bernoulli sample of grey levels ``x`` in [0, 1] (float32, same shape); a missing
    value (NaN) stays missing.

    ``seed`` is an integer or a ``numpy.random.Generator``.
    """
    rng = np.random.default_rng(seed)
    sample = (rng.random(np.shape(x), dtype=np.float32) < x).astype(np.float32)
    return np.where(np.isnan(x), np.float32(np.nan), sample)


def make_pipeline(x, *, batch_size, shuffle=False, dynamic_binarize=False, seed=0,
                  drop_remainder=False, with_index=False, labels=None):
    """A ``tf.data.Dataset`` of float32 batches of ``x``, or of ``(x, labels)`` when ``labels``
    (int, one per image: a conditional model's) are given.

    ``shuffle`` reshuffles the whole array each epoch; ``dynamic_binarize`` replaces each batch by
    a Bernoulli sample of its pixels (``tfvae.noise.bernoulli``), fresh each epoch. Both are
    seeded from ``seed``, so two pipelines built with one seed yield the same sequence of epochs.
    ``with_index`` gives ``(x, index)`` batches, each example's row number in ``x`` beside it
    (for models that keep state per example, such as MCEM).
    """
    if is_stream(x):
        return _stream_pipeline(x, batch_size=batch_size, shuffle=shuffle,
                                dynamic_binarize=dynamic_binarize, seed=seed,
                                drop_remainder=drop_remainder, with_index=with_index,
                                labels=labels)
    x = validate_examples(x, argument="x", square_images=False,
                          support="unit_interval" if dynamic_binarize else "real")
    check_int("batch_size", batch_size)
    check_seed("seed", seed)
    shuffle_seed, noise_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
    # No cache(): from_tensor_slices already holds x in memory; cache() would keep a second copy.
    if labels is not None and with_index:
        raise InputError("labels", "no labels with with_index (a model that keeps state per "
                         "example is not conditional)", f"{len(labels)} labels")
    second = (np.arange(len(x), dtype=np.int32) if with_index
              else None if labels is None else check_labels("labels", labels, count=len(x)))
    ds = tf.data.Dataset.from_tensor_slices(x if second is None else (x, second))
    if shuffle:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if dynamic_binarize:
        # One stateless seed per batch, from a stream that differs each epoch but is fixed by
        # noise_seed: reproducible runs, fresh samples per epoch, one vectorized op per batch.
        batch_seeds = tf.data.Dataset.random(seed=noise_seed, rerandomize_each_iteration=True)
        bernoulli = noise.bernoulli_keeping_missing if allows_missing() else noise.bernoulli

        def binarize(batch, batch_seed):
            stateless_seed = tf.stack([tf.cast(batch_seed, tf.int32), 0])
            if second is not None:
                return bernoulli(batch[0], stateless_seed), batch[1]
            return bernoulli(batch, stateless_seed)

        ds = tf.data.Dataset.zip(ds, batch_seeds).map(binarize,
                                                      num_parallel_calls=tf.data.AUTOTUNE)
    return mark_checked(ds.prefetch(tf.data.AUTOTUNE))


def make_train_stream(x, *, batch_size, seed=0, first_epoch=0, drop_remainder=False,
                      labels=None):
    """An endless ``tf.data.Dataset`` of shuffled float32 batches of ``x``, epoch after epoch;
    of ``(x, labels)`` batches when ``labels`` (a conditional model's) are given.

    Epoch ``e`` (counting from ``first_epoch``) is one pass over ``x`` in an order fixed by
    ``(seed, e)``: ``ceil(len(x) / batch_size)`` batches, the last one partial. Order depends on
    the epoch number, not on how many iterators were made before, so a resumed run sees the same
    batches as one that was never stopped, and a ``tf.distribute`` run (Keras reads one batch
    ahead to build the model) the same as one device. Train with
    ``fit(..., steps_per_epoch=steps_per_epoch(len(x), batch_size))``. ``drop_remainder`` leaves
    out each epoch's partial batch (different examples each epoch), for devices that need every
    batch the same shape (TPUs).

    ``x`` is held in memory as one tensor and batches are gathered from it, so the per-example
    cost of a shuffle buffer is paid per batch instead. Binarization is left to the model
    (``VAE.dynamic_binarization``), which draws it on the device.
    """
    if not is_stream(x):
        x = validate_examples(x, argument="x", square_images=False)
    check_int("batch_size", batch_size)
    check_seed("seed", seed)
    check_seed("first_epoch", first_epoch)
    shuffle_seed = train_stream_seed(seed)
    n, steps = len(x), steps_per_epoch(len(x), batch_size, drop_remainder)
    if steps == 0:
        raise InputError("batch_size", f"at most the {n} training examples when partial "
                         "batches are left out", repr(batch_size))
    if is_stream(x):
        return stream_epochs(x, batch_size=batch_size, shuffle_seed=shuffle_seed,
                             first_epoch=first_epoch, drop_remainder=drop_remainder,
                             labels=labels)
    levels = grey_levels(x)
    # 8-bit images (MNIST) are held as bytes, a quarter of the memory, and scaled per batch.
    images = tf.constant(x if levels is None else levels)
    scale = (lambda batch: batch) if levels is None else (
        lambda batch: tf.cast(batch, tf.float32) / 255.0)

    def epoch_batches(epoch):
        key = tf.stack([tf.constant(shuffle_seed, tf.int64), epoch])
        order = tf.argsort(tf.random.stateless_uniform([n], seed=key))
        return tf.data.Dataset.range(steps).map(
            lambda i: order[i * batch_size: tf.minimum((i + 1) * batch_size, n)])

    ds = tf.data.Dataset.counter(first_epoch).flat_map(epoch_batches)
    if labels is None:
        ds = ds.map(lambda index: scale(tf.gather(images, index)),
                    num_parallel_calls=tf.data.AUTOTUNE)
    else:
        classes = tf.constant(check_labels("labels", labels, count=len(x)), tf.int64)
        ds = ds.map(lambda index: (scale(tf.gather(images, index)), tf.gather(classes, index)),
                    num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Each worker holds the whole (small) array: shard the batches, not files.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return mark_checked(ds.with_options(options).prefetch(tf.data.AUTOTUNE))


def train_stream_seed(seed):
    """The seed of the training stream's epoch orders, from the run's ``seed``."""
    return int(np.random.SeedSequence(seed).generate_state(1)[0] >> 1)


def stream_epochs(x, *, batch_size, shuffle_seed, first_epoch=0, drop_remainder=False,
                  labels=None, shard=None, steps=None):
    """:func:`make_train_stream`'s batches from the stream ``x``: epoch ``e`` its
    ``epoch_batches`` of ``(shuffle_seed, e)``, cast to float32 at the end; ``shard``
    ``(index, count)``: a worker's part, read again from its start where it has fewer than
    ``steps`` batches, so that every worker's epoch is ``steps`` batches long."""
    labelled = labels is not None

    def epoch_batches(epoch):
        batches = x.epoch_batches(shuffle_seed, epoch, batch_size, drop_remainder, shard)
        return batches if steps is None else batches.repeat().take(steps)

    def cast(batch, y):
        return (x.cast(batch), y) if labelled else x.cast(batch)

    ds = tf.data.Dataset.counter(first_epoch).flat_map(epoch_batches).map(
        cast, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # A worker's part is its own files (shard); else Keras's distribution shards batches.
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF if shard is not None
        else tf.data.experimental.AutoShardPolicy.DATA)
    return _checked_stream(x, ds.with_options(options).prefetch(tf.data.AUTOTUNE))


def _stream_pipeline(x, *, batch_size, shuffle, dynamic_binarize, seed, drop_remainder,
                     with_index, labels):
    """:func:`make_pipeline` of a stream: its batches in order (or one epoch shuffled by
    ``seed``), cast to float32; the labels are the stream's own."""
    check_int("batch_size", batch_size)
    check_seed("seed", seed)
    if with_index:
        raise InputError("x", "an array (a model that keeps state per example holds its data "
                         "in memory)", f"the stream {x.where}")
    if dynamic_binarize:
        raise InputError("dynamic_binarize", "False for a stream (the model binarizes its "
                         "training batches)", "True")
    if shuffle:
        ds = x.epoch_batches(seed, 0, batch_size, drop_remainder)
    elif x.binarize_seed is not None:
        # One draw per example whatever the batch size: binarized in fixed blocks, then batched.
        def binarize(block, batch):
            key = tf.stack([tf.constant(x.binarize_seed, tf.int32), tf.cast(block, tf.int32)])
            return noise.bernoulli(x.cast(batch[0]), key), batch[1]

        ds = x.ordered_batches(_BINARIZED_BLOCK).enumerate().map(binarize).unbatch().batch(
            batch_size, drop_remainder=drop_remainder)
    else:
        ds = x.ordered_batches(batch_size)
    if labels is None:
        ds = ds.map(lambda batch, y: x.cast(batch), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda batch, y: (x.cast(batch), y), num_parallel_calls=tf.data.AUTOTUNE)
    # Keras reads a pipeline of known length to its end without a warning that it ran out.
    ds = ds.apply(tf.data.experimental.assert_cardinality(
        steps_per_epoch(len(x), batch_size, drop_remainder)))
    return _checked_stream(x, ds.prefetch(tf.data.AUTOTUNE))


_BINARIZED_BLOCK = 256


def _checked_stream(x, ds):
    """8-bit levels are valid for every likelihood that reads [0, 1]: marked checked. Float
    examples are checked batch by batch where the model takes them."""
    return mark_checked(ds) if x.dtype == np.uint8 else ds


def grey_levels(x):
    """``x`` as uint8 k when every value is exactly float32(k / 255), else None."""
    levels = np.empty(x.shape, np.uint8)
    for start in range(0, len(x), 4096):  # in blocks: no full-size float temporaries
        block = x[start:start + 4096]
        if np.isnan(block).any():  # a missing value is no grey level
            return None
        levels[start:start + 4096] = np.rint(block * 255)
        if not np.array_equal(levels[start:start + 4096].astype(np.float32) / np.float32(255),
                              block):
            return None
    return levels


def steps_per_epoch(num_examples, batch_size, drop_remainder=False):
    """Batches in one pass over ``num_examples``: the last one partial, or left out."""
    if drop_remainder:
        return num_examples // batch_size
    return -(-num_examples // batch_size)
