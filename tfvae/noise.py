"""Training noise that belongs to each example, not to the device that processes it.

Under ``tf.distribute`` each replica holds a slice of the global batch. If every replica drew its
own noise, one device and N replicas would train on different noise even with the same seed and
global batch. Here every replica draws the noise of the *whole* global batch from the step's
seed (the same on all replicas) and keeps the rows of its own examples, so an example's sample of
z and its binarization depend only on the seed and the example's position in the global batch:
one device and any number of replicas compute the same losses, up to float rounding.

The numbers are Philox bits (Salmon et al., 2011) keyed by the seed, turned into floats here:
TensorFlow's kernels and XLA produce the same bits but convert them to floats differently, so
doing the conversion ourselves makes a ``jit_compile`` run draw what a run without it draws.

The cost is that each of R replicas draws R times its share of noise: a stateless random op over
[global batch, D] or [global batch, *E], small next to the networks it feeds. On one replica the
layout is static and nothing is gathered or sliced.

Exported models draw from a second generator, :class:`CounterSeed`'s: integer multiplications
and remainders that every runtime has (TF, LiteRT's builtin ops, ONNX), so a SavedModel, a
``.tflite`` and an ``.onnx`` file give the same numbers for the same seeds.
"""

import math
from typing import NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

_PHILOX = 1  # tf.random.Algorithm.PHILOX


def _key(seed):
    """The Philox key [1] (uint64): the two int32 halves of ``seed`` side by side."""
    seed = tf.cast(seed, tf.int64)
    key = seed[0] * (2 ** 32) + tf.bitwise.bitwise_and(seed[1], 0xFFFFFFFF)
    return tf.reshape(tf.bitcast(key, tf.uint64), [1])


def _bits(shape, seed, dtype=tf.uint32):
    return tf.raw_ops.StatelessRandomUniformFullIntV2(
        shape=shape, key=_key(seed), counter=tf.zeros([2], tf.uint64), alg=_PHILOX, dtype=dtype)


def _uniform(shape, seed):
    """Uniform in (0, 1): the top 23 bits of each word, centred in their interval.

    23 bits keep every value exact in float32, so none rounds to 0 or 1 (ndtri would be infinite).
    """
    return (tf.cast(tf.bitwise.right_shift(_bits(shape, seed), 9), tf.float32) + 0.5) * 2.0 ** -23


def uniform(shape, seed):
    """Uniform noise in (0, 1) of ``shape`` for a stateless ``seed`` [2], never 0 or 1."""
    return _uniform(shape, seed)


def _normal(shape, seed):
    return tf.math.ndtri(_uniform(shape, seed))


def batch_layout(batch_size):
    """Where this replica's ``batch_size`` examples sit in the global batch.

    ``None`` on one replica (the batch is the global batch); else ``(offset, global_size)``.
    Replicas may hold different numbers of examples (the last, partial batch), so the sizes are
    all-gathered rather than assumed equal.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    if isinstance(context.strategy, tf.distribute.TPUStrategy):
        # TPU batches are full and alike (static shapes), and shapes must be known when
        # compiling: compute the layout instead of gathering it.
        replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
        return replica * batch_size, context.num_replicas_in_sync * batch_size
    sizes = context.all_gather(tf.reshape(tf.cast(batch_size, tf.int32), [1]), axis=0)
    offset = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    return offset, tf.reduce_sum(sizes)


def _own_rows(draw, sample_shape, batch_size, event_shape, layout):
    """``draw(shape)`` for the global batch, keeping this replica's rows of the batch axis."""
    def shape(rows):
        return tf.concat([tf.constant(sample_shape, tf.int32, [len(sample_shape)]),
                          tf.reshape(tf.cast(rows, tf.int32), [1]),
                          tf.cast(event_shape, tf.int32)], axis=0)

    if layout is None:
        return draw(shape(batch_size))
    offset, global_size = layout
    return tf.gather(draw(shape(global_size)), offset + tf.range(batch_size),
                     axis=len(sample_shape))


def split(seed, num=2):
    """``num`` new stateless seeds [num, 2] from ``seed``, by Philox (see the module's notes)."""
    return _bits([num, 2], seed, tf.int32)


def standard_normal(seed, sample_shape, batch_size, event_shape, layout=None):
    """N(0, I) noise [*sample_shape, batch_size, *event_shape] for this replica's examples.

    ``layout`` is :func:`batch_layout` of the batch; ``seed`` a stateless int32 seed [2], or a
    :class:`CounterSeed` (one key per example, on one device).
    """
    if isinstance(seed, CounterSeed):
        if layout is not None:  # its keys are the examples': no global batch to place them in
            raise ValueError("a CounterSeed draws noise on one device, without a batch layout")
        return seed.normal(sample_shape, event_shape)
    return _own_rows(lambda shape: _normal(shape, seed),
                     list(sample_shape), batch_size, event_shape, layout)


def bernoulli(probs, seed, layout=None):
    """A 0/1 sample of ``probs`` [B, *E] in [0, 1], per-example noise as in :func:`standard_normal`.

    Each 32-bit word gives two 16-bit uniforms, half the generator's work of one per pixel; a
    pixel is then 1 with probability within 2^-17 of ``probs``.
    """
    size = tf.reduce_prod(tf.shape(probs)[1:])
    words = _own_rows(lambda shape: _bits(shape, seed), [], tf.shape(probs)[0],
                      tf.reshape((size + 1) // 2, [1]), layout)
    halves = tf.concat([tf.bitwise.right_shift(words, 16), tf.bitwise.bitwise_and(words, 0xFFFF)],
                       axis=1)[:, :size]
    uniform = (tf.cast(halves, tf.float32) + 0.5) * 2.0 ** -16
    return tf.cast(tf.reshape(uniform, tf.shape(probs)) < probs, probs.dtype)


def bernoulli_keeping_missing(probs, seed, layout=None):
    """:func:`bernoulli`, with a missing value (NaN) of ``probs`` left missing."""
    return tf.where(tf.math.is_nan(probs), probs, bernoulli(probs, seed, layout))


def split_seeds(seed, num):
    """``num`` seeds from ``seed``, a list: a stateless seed's by TFP, a :class:`CounterSeed`'s
    as streams of its own."""
    if isinstance(seed, CounterSeed):
        return [seed.substream(i) for i in range(num)]
    return tf.unstack(tfp.random.split_seed(seed, n=num))


# ----------------------------------------------------------- the generator of exported models

# Keys and values live in [0, P), P = 2^31 - 1 a prime: a product of two fits in int64 and
# v -> v^5 permutes [0, P) (5 does not divide P - 1). Q, another prime, keys seeds apart that
# P does not.
_P = 2 ** 31 - 1
_Q = 2 ** 31 - 19
_STREAMS = 2 ** 16  # substreams per stream


def _mod(value, modulus):
    """``value`` mod ``modulus`` in [0, modulus), also where a converter truncates the remainder
    of a negative value (tf2onnx does): then a second, positive, remainder corrects it."""
    return tf.math.floormod(tf.math.floormod(value, modulus) + modulus, modulus)


def _power5(v):
    v2 = tf.math.floormod(v * v, _P)
    return tf.math.floormod(tf.math.floormod(v2 * v2, _P) * v, _P)


class CounterSeed(NamedTuple):
    """Per-example noise that depends on the example's int64 seed alone: ``keys`` int64 [B]
    (any values, one per example) and a Python int ``stream`` (what the noise is for).

    Number j of a key's stream is a keyed permutation of j in [0, P): three rounds of adding a
    key, multiplying by a constant and raising to the fifth power, modulo P; its low 24 bits make
    a uniform in (0, 1), two uniforms one normal (Box-Muller). Only integer add, multiply,
    remainder and cast, and float log, sqrt and cos: LiteRT's builtin ops and ONNX's.
    """

    keys: tf.Tensor
    stream: int = 0

    def substream(self, index):
        return CounterSeed(self.keys, self.stream * _STREAMS + index + 1)

    def uniform(self, count):
        """Uniforms in (0, 1) [B, count], exact in float32 (24 bits), never 0 or 1."""
        seed = tf.cast(self.keys, tf.int64)[:, tf.newaxis]
        a = _mod(seed, _P)
        b = tf.math.floormod(_mod(seed, _Q) + self.stream * 40503, _P)
        v = tf.range(tf.cast(count, tf.int64), dtype=tf.int64)[tf.newaxis]
        v = _power5(tf.math.floormod(v + a, _P))
        v = _power5(tf.math.floormod(v * 48271 + b, _P))
        v = _power5(tf.math.floormod(v * 69621 + a, _P))
        return (tf.cast(tf.math.floormod(v, 2 ** 24), tf.float32) + 0.5) * 2.0 ** -24

    def normals(self, count):
        """N(0, 1) draws [B, count]."""
        u = tf.reshape(self.uniform(2 * count), [-1, count, 2])
        return tf.sqrt(-2.0 * tf.math.log(u[..., 0])) * tf.cos((2 * math.pi) * u[..., 1])

    def normal(self, sample_shape, event_shape):
        """N(0, I) noise [*sample_shape, B, *event_shape], example b's from ``keys[b]``."""
        sample_shape = tf.cast(tf.reshape(sample_shape, [-1]), tf.int32)
        event_shape = tf.cast(tf.reshape(event_shape, [-1]), tf.int32)
        samples, events = tf.reduce_prod(sample_shape), tf.reduce_prod(event_shape)
        draws = tf.reshape(self.normals(samples * events), [-1, samples, events])
        rows = tf.reshape(tf.shape(self.keys)[0], [1])
        return tf.reshape(tf.transpose(draws, [1, 0, 2]),
                          tf.concat([sample_shape, rows, event_shape], axis=0))
