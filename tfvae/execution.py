"""How a training step executes: XLA compilation, mixed precision, steps per execution."""

import contextlib

import keras
import tensorflow as tf

from tfvae import options
from tfvae.errors import InputError

# Below this many examples left to train on, XLA's compilation takes longer than it saves
# (benchmarks/README.md has the measurement).
XLA_MIN_EXAMPLES = 300_000


def resolve_jit_compile(jit_compile, remaining_examples):
    """``jit_compile`` for ``compile``: "auto" is on for one device and a long enough run.

    Call it under the strategy's scope.
    """
    if jit_compile != "auto":
        return jit_compile
    return not tf.distribute.has_strategy() and remaining_examples >= XLA_MIN_EXAMPLES


def dtype_policy(mixed_precision):
    """The Keras dtype policy for ``--mixed-precision`` (None: float32 throughout)."""
    if mixed_precision is None:
        return None
    if mixed_precision not in options.MIXED_PRECISION:
        raise InputError("--mixed-precision", f"one of {options.MIXED_PRECISION} or none",
                         repr(mixed_precision))
    return f"mixed_{mixed_precision}"


@contextlib.contextmanager
def global_dtype_policy(policy):
    """Layers take the global policy when built, so the model is built (and loaded) under it."""
    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def largest_divisor(n, at_most):
    """The largest divisor of ``n`` that is at most ``at_most``."""
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)
