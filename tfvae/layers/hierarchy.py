"""Two stochastic layers (Burda et al., 2015, section 5): x -> z1 -> z2.

    q(z1, z2|x) = q(z1|x) q(z2|z1),    p(x, z1, z2) = p(z2) p(z1|z2) p(x|z1),

every conditional a diagonal Gaussian whose mean and standard deviation are a network of the
layer below (above, for p). The model's latent is z = [z1, z2] [*S, B, D1 + D2], so the
estimators see one q(z|x) and one p(z), and p(x|z) reads z1 alone.

Both joints are a Gaussian pushed through an affine coupling (``tfb.RealNVP``): the conditioning
block passes unchanged and the other becomes loc(block) + scale(block) * eps. So

- q(z|x) = RealNVP(D1 masked) of N([mu1(x), 0], diag([sigma1(x)^2, 1])): z2 = m(z1) + s(z1) eps2;
- p(z) = RealNVP(last D2 masked) of N(0, I): z1 = m'(z2) + s'(z2) eps1, z2 = eps2;

and TFP's change of variables gives log q(z|x) = log q(z1|x) + log q(z2|z1) and
log p(z) = log p(z2) + log p(z1|z2): the coupling's log-determinant is sum log s.

Shapes: ``B`` batch, ``S`` samples, ``D1``, ``D2`` the layers' sizes, ``H`` hidden units.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.activations import activation_function
from tfvae.layers.diagonal_normal import DiagonalNormal
from tfvae.layers.likelihoods import DiagonalGaussian, positive_scale
from tfvae.layers.flows import FlowDistribution

tfd = tfp.distributions
tfb = tfp.bijectors


@keras.saving.register_keras_serializable(package="tfvae")
class GaussianConditional(keras.layers.Layer):
    """A block [*S, B, D_in] -> (loc, log scale) [*S, B, D_out] of a conditional Gaussian:
    ``depth`` Dense layers of ``hidden`` units (``activation``), then an affine map. The scale is
    softplus + a floor, as the other heads' (``positive_scale``)."""

    def __init__(self, units, hidden, depth, activation="tanh", **kwargs):
        super().__init__(**kwargs)
        self.units, self.hidden, self.depth = int(units), int(hidden), int(depth)
        self.activation = activation
        function = activation_function(activation)
        self.dense = [keras.layers.Dense(self.hidden, activation=function, name=f"dense_{i}")
                      for i in range(self.depth)]
        self.params = keras.layers.Dense(2 * self.units, name="params")

    def build(self, input_shape):
        shape = input_shape
        for layer in self.dense:
            layer.build(shape)
            shape = (*shape[:-1], self.hidden)
        self.params.build(shape)

    def call(self, block):
        # Dense layers take [N, D_in]: flatten the leading dims (none for one prior draw).
        leading = tf.shape(block)[:-1]
        h = tf.reshape(block, [-1, block.shape[-1]])
        for layer in self.dense:
            h = layer(h)
        params = tf.reshape(tf.cast(self.params(h), tf.float32),
                            tf.concat([leading, [2 * self.units]], 0))
        loc, raw_scale = tf.split(params, 2, axis=-1)
        return loc, tf.math.log(positive_scale(raw_scale))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "hidden": self.hidden,
                "depth": self.depth, "activation": self.activation}


@keras.saving.register_keras_serializable(package="tfvae")
class HierarchicalPosterior(keras.layers.Layer):
    """Hidden units h [B, H] -> q(z1, z2|x), batch [B], event [D1 + D2]: q(z1|x) from h, then
    q(z2|z1) from a :class:`GaussianConditional` of ``hidden`` units and ``depth`` layers."""

    def __init__(self, dims, hidden, depth, activation="tanh", **kwargs):
        super().__init__(**kwargs)
        self.dims = [int(d) for d in dims]
        self.hidden, self.depth, self.activation = int(hidden), int(depth), activation
        self.first = DiagonalGaussian(self.dims[0], name="z1")
        self.second = GaussianConditional(self.dims[1], hidden, depth, activation, name="z2")

    def build(self, input_shape):
        self.first.build(input_shape)
        self.second.build((None, self.dims[0]))

    def call(self, h):
        q1 = self.first(h)
        batch = tf.shape(q1.loc)[:-1]
        zeros = tf.zeros(tf.concat([batch, [self.dims[1]]], 0))
        base = DiagonalNormal(
            loc=tf.concat([q1.loc, zeros], -1),
            scale_diag=tf.concat([q1.stddev(), zeros + 1.0], -1))
        return FlowDistribution(base, tfb.RealNVP(num_masked=self.dims[0],
                                                  shift_and_log_scale_fn=_coupling(self.second)))

    def get_config(self):
        return {**super().get_config(), "dims": self.dims, "hidden": self.hidden,
                "depth": self.depth, "activation": self.activation}


@keras.saving.register_keras_serializable(package="tfvae")
class HierarchicalPrior(keras.layers.Layer):
    """p(z1, z2) = N(z2; 0, I) N(z1; m(z2), diag(s(z2)^2)), event [D1 + D2], with (m, log s) a
    :class:`GaussianConditional` of ``hidden`` units and ``depth`` layers."""

    def __init__(self, dims, hidden, depth, activation="tanh", **kwargs):
        super().__init__(**kwargs)
        self.dims = [int(d) for d in dims]
        self.hidden, self.depth, self.activation = int(hidden), int(depth), activation
        self.first = GaussianConditional(self.dims[0], hidden, depth, activation, name="z1")
        self.first.build((None, self.dims[1]))
        self.built = True

    def distribution(self, encoder=None):
        """The prior (``encoder`` unused)."""
        return FlowDistribution(
            DiagonalNormal(loc=tf.zeros([sum(self.dims)])),
            tfb.RealNVP(num_masked=-self.dims[1], shift_and_log_scale_fn=_coupling(self.first)))

    def get_config(self):
        return {**super().get_config(), "dims": self.dims, "hidden": self.hidden,
                "depth": self.depth, "activation": self.activation}


def _coupling(conditional):
    """RealNVP's ``fn(block, units)`` from a :class:`GaussianConditional`, which knows its units
    (a Keras layer takes tensors alone as positional arguments)."""
    return lambda block, units: conditional(block)
