"""Learned priors p(z): Keras 3 layers that hold a prior's variables and return it as a ``tfd``
distribution with event [D], trained with the rest of the model.

- ``"mog"``: a mixture of K diagonal Gaussians, p(z) = sum_k pi_k N(z; m_k, diag(s_k^2)).
- ``"vamp"``: the VampPrior (Tomczak & Welling, 2018), the posterior averaged over K learned
  pseudo-inputs u_k: p(z) = (1/K) sum_k q(z|u_k).

Neither has a closed-form KL against q(z|x): a model with one uses SGVB estimator A.

Shapes: ``K`` components, ``D`` latent dimension, ``E`` image shape.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.diagonal_normal import DiagonalNormal
from tfvae.layers.likelihoods import positive_scale

tfd = tfp.distributions
# softplus^-1(1): a raw scale that starts each component at unit standard deviation.
_UNIT_RAW_SCALE = float(np.log(np.expm1(1.0)))


@keras.saving.register_keras_serializable(package="tfvae")
class MixturePrior(keras.layers.Layer):
    """p(z) = sum_k softmax(logits)_k N(z; locs_k, diag(softplus(raw_scales_k)^2)).

    Variables: ``logits`` [K] (zeros: equal weights), ``locs`` [K, D] (N(0, 1) draws, so the
    components start apart), ``raw_scales`` [K, D] (unit scales).
    """

    def __init__(self, latent_dim, components, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim, self.components = int(latent_dim), int(components)
        self.logits = self.add_weight(name="logits", shape=(self.components,),
                                      initializer="zeros")
        self.locs = self.add_weight(name="locs", shape=(self.components, self.latent_dim),
                                    initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.raw_scales = self.add_weight(
            name="raw_scales", shape=(self.components, self.latent_dim),
            initializer=keras.initializers.Constant(_UNIT_RAW_SCALE))
        self.built = True

    def distribution(self, encoder=None):
        """The prior, batch [] and event [D] (``encoder`` unused)."""
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=tf.convert_to_tensor(self.logits)),
            DiagonalNormal(loc=tf.convert_to_tensor(self.locs),
                           scale_diag=positive_scale(self.raw_scales)))

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim,
                "components": self.components}


@keras.saving.register_keras_serializable(package="tfvae")
class VampPrior(keras.layers.Layer):
    """p(z) = (1/K) sum_k q(z|u_k), the model's own posterior at K pseudo-inputs u_k [K, *E].

    u_k = sigmoid(raw_k) keeps the pseudo-inputs images in [0, 1] (Tomczak & Welling clip them to
    [0, 1] with a hard tanh); ``raw`` [K, *E] starts near 0, pseudo-inputs near grey 0.5.
    The encoder is passed at each call rather than held, so its variables belong to the model
    once.
    """

    def __init__(self, image_shape, components, **kwargs):
        super().__init__(**kwargs)
        self.image_shape, self.components = tuple(int(d) for d in image_shape), int(components)
        self.raw = self.add_weight(name="pseudo_inputs", shape=(self.components, *self.image_shape),
                                   initializer=keras.initializers.RandomNormal(stddev=0.01))
        self.built = True

    @property
    def pseudo_inputs(self):
        """u [K, *E]."""
        return tf.sigmoid(tf.convert_to_tensor(self.raw))

    def distribution(self, encoder):
        """The prior, batch [] and event [D]: a mixture of ``encoder``'s q(z|u_k)."""
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=tf.zeros([self.components])), encoder(self.pseudo_inputs))

    def get_config(self):
        return {**super().get_config(), "image_shape": list(self.image_shape),
                "components": self.components}


def prior_layer(prior, latent_dim, image_shape, components):
    """The layer of a learned ``prior`` ("mog" or "vamp"); None for "normal", N(0, I)."""
    if prior == "mog":
        return MixturePrior(latent_dim, components, name="prior")
    if prior == "vamp":
        return VampPrior(image_shape, components, name="prior")
    return None
