"""Inverse autoregressive flow posteriors (Kingma et al., 2016) from ``tfp.bijectors``.

q(z|x) is a diagonal Gaussian q0(z0|x) pushed through T steps z_t = f_t(z_{t-1}); TFP's
``TransformedDistribution`` gives its density by the change of variables

    log q(z_T|x) = log q0(z0|x) - sum_t log |det df_t/dz_{t-1}|.

Each step is ``tfb.Invert(tfb.MaskedAutoregressiveFlow(fn))``: with (m, s) = fn(z) autoregressive
in z (output d sees z_<d only), f(z) = (z - m(z)) * exp(-s(z)), computed in one pass, with a
triangular Jacobian of log-determinant -sum_d s_d(z). Steps alternate the order of the
dimensions (``tfb.Permute``). ``fn`` is :class:`MADE` (Germain et al., 2015), a Keras 3 layer:
TFP's ``AutoregressiveNetwork`` is a tf_keras (Keras 2) layer whose variables a Keras 3 model
does not track. Each MADE also takes the encoder's hidden units h as context, as in Kingma et
al.

Shapes: ``B`` batch, ``S`` samples, ``D`` latent dimension, ``H`` hidden units.
"""

import functools

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.likelihoods import DiagonalGaussian

tfd = tfp.distributions
tfb = tfp.bijectors


def made_masks(latent_dim, hidden):
    """The MADE masks: input -> hidden [D, H] and hidden -> output [H, D].

    Input d has degree d (1..D); hidden unit k has degree 1 + k mod (D - 1); a hidden unit sees
    the inputs of degree at most its own, and output d sees the hidden units of degree below d,
    so output d depends on z_<d only (output 1 on nothing: its bias and the context).
    """
    inputs = np.arange(1, latent_dim + 1)
    units = 1 + np.arange(hidden) % max(latent_dim - 1, 1)
    return ((units[None, :] >= inputs[:, None]).astype("float32"),
            (inputs[None, :] > units[:, None]).astype("float32"))


@keras.saving.register_keras_serializable(package="tfvae")
class MADE(keras.layers.Layer):
    """z [*S, B, D] and context h [B, C] -> (shift, log_scale), each [*S, B, D], autoregressive
    in z: one masked hidden layer of ``hidden`` units (tanh), plus a dense map of h.

    The output layer starts at zero, so each flow step starts as the identity.
    """

    def __init__(self, latent_dim, hidden, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim, self.hidden = int(latent_dim), int(hidden)
        self.in_mask, out_mask = made_masks(self.latent_dim, self.hidden)
        self.out_mask = np.concatenate([out_mask, out_mask], axis=1)  # shift, log_scale

    def build(self, context_shape):
        d, h = self.latent_dim, self.hidden
        self.in_kernel = self.add_weight(name="in_kernel", shape=(d, h),
                                         initializer="glorot_uniform")
        self.context_kernel = self.add_weight(name="context_kernel", shape=(context_shape[-1], h),
                                              initializer="glorot_uniform")
        self.hidden_bias = self.add_weight(name="hidden_bias", shape=(h,), initializer="zeros")
        self.out_kernel = self.add_weight(name="out_kernel", shape=(h, 2 * d),
                                          initializer="zeros")
        self.out_bias = self.add_weight(name="out_bias", shape=(2 * d,), initializer="zeros")

    def call(self, z, context):
        hidden = tf.tanh(tf.matmul(z, self.in_kernel * self.in_mask)
                         + tf.matmul(context, self.context_kernel) + self.hidden_bias)
        out = tf.matmul(hidden, self.out_kernel * self.out_mask) + self.out_bias
        shift, log_scale = tf.split(out, 2, axis=-1)
        return shift, log_scale

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim, "hidden": self.hidden}


class FlowDistribution(tfd.TransformedDistribution):
    """A Gaussian ``distribution`` (q0, with ``loc`` and ``scale``) through ``bijector``: a flow
    posterior, or the joint of two stochastic layers (``tfvae.layers.hierarchy``).

    Its mean and standard deviation have no closed form. ``mean()`` is the flow's image of q0's
    mean, the posterior's centre (what ``reconstruct`` and ``encode`` use as a code);
    ``stddev()`` is the linearized one: sqrt(diag(J diag(sigma0^2) J^T)), J [B, D, D] the flow's
    Jacobian at q0's mean.
    """

    def _mean(self, **kwargs):
        return self.bijector.forward(self.distribution.mean())

    def _stddev(self, **kwargs):
        center = self.distribution.mean()
        with tf.GradientTape() as tape:
            tape.watch(center)
            image = self.bijector.forward(center)
        jacobian = tape.batch_jacobian(image, center)
        variance = tf.reduce_sum(tf.square(jacobian * self.distribution.stddev()[:, None, :]),
                                 axis=-1)
        return tf.sqrt(variance)


@keras.saving.register_keras_serializable(package="tfvae")
class FlowPosterior(keras.layers.Layer):
    """Hidden units h [B, H] -> q(z|x): a diagonal Gaussian q0 then ``steps`` IAF steps, each a
    MADE of ``hidden`` units given h. Returns a :class:`FlowDistribution`, batch [B], event [D].
    """

    def __init__(self, latent_dim, steps, hidden, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim, self.steps, self.hidden = int(latent_dim), int(steps), int(hidden)
        self.gaussian = DiagonalGaussian(self.latent_dim, name="gaussian")
        self.made = [MADE(self.latent_dim, self.hidden, name=f"made_{t}")
                     for t in range(self.steps)]

    def build(self, input_shape):
        self.gaussian.build(input_shape)
        for made in self.made:
            made.build(input_shape)

    def bijector(self, h):
        """The flow f_T o ... o f_1 given the context h, a ``tfb.Chain``."""
        reverse = tfb.Permute(np.arange(self.latent_dim)[::-1].tolist())
        steps = []  # in the order they apply
        for t, made in enumerate(self.made):
            if t:
                steps.append(reverse)
            steps.append(tfb.Invert(tfb.MaskedAutoregressiveFlow(
                shift_and_log_scale_fn=functools.partial(made, context=h))))
        return tfb.Chain(steps[::-1])  # a Chain applies its last bijector first

    def call(self, h):
        return FlowDistribution(self.gaussian(h), self.bijector(h))

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim, "steps": self.steps,
                "hidden": self.hidden}
