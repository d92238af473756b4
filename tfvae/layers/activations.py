"""The activation a model's ``activation`` names, for every body: Keras's, except GELU.

GELU is written here as (x / 2)(1 + erf(x / sqrt(2))), with its derivative written out:
- Differentiating Keras's exact GELU, 0.5 x erfc(-x / sqrt(2)), adds about ten elementwise ops
  per activation to the backward pass; on a CPU they took about a third of the residual body's
  training step. The derivative Phi(x) + x phi(x), with erf kept from the forward pass, takes
  five, and that step is about 15% faster (``benchmarks/compare/run.py --body resnet``).
- ONNX has no Erfc, so Keras's form does not convert; this one does, and LiteRT's converter
  still recognizes it as its GELU op.
The values are Keras's to float32 rounding, and so are the gradients.
"""

import math

import keras
import tensorflow as tf

_HALF_SQRT = 1 / math.sqrt(2)
_NORMAL_DENSITY = 1 / math.sqrt(2 * math.pi)


@tf.custom_gradient
def gelu(x):
    """x Phi(x), Phi the standard normal CDF (the exact GELU)."""
    erf = tf.math.erf(_HALF_SQRT * x)

    def grad(upstream):
        cdf = 0.5 * (1 + erf)
        return upstream * (cdf + _NORMAL_DENSITY * x * tf.exp(-0.5 * tf.square(x)))

    return (0.5 * x) * (1 + erf), grad


def activation_function(name):
    """The function ``name`` names (any that ``keras.activations.get`` takes)."""
    return gelu if name == "gelu" else keras.activations.get(name)
