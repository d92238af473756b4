"""Keras 3 layers that turn a network's output into a TFP distribution.

``tfp.layers`` are Keras 2 layers and do not mix with Keras 3 models, so these layers are plain
Keras 3 layers whose ``call`` returns a ``tfd`` object. Each layer owns the final affine map of its
network, so a body (``tfvae.layers.bodies``) ends in hidden units and the head says what they mean.

The decoder heads are the members of ``LIKELIHOODS`` (``likelihood="bernoulli"``): a new one is a
subclass of :class:`Likelihood` registered with ``@LIKELIHOODS.register(name)`` and Keras's
``register_keras_serializable``. What the rest of the package needs to know of a head (the
values it takes, ``support``; how to draw from it, ``draw``) is an attribute of its class, never
its name. Every head takes any event shape: vectors ``(D,)`` as well as images ``(H, W, C)``.

Shapes: ``B`` is any leading (batch or sample) shape, ``D`` the latent dimension and ``E`` the
event shape of the data, e.g. ``(28, 28, 1)``.
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import noise
from tfvae.errors import InputError
from tfvae.layers.diagonal_normal import DiagonalNormal
from tfvae.layers.registries import LIKELIHOODS, SUPPORTS

tfd = tfp.distributions

# The smallest standard deviation a head can output: keeps log-densities finite when the raw
# output runs to -inf, without limiting any scale a model would reasonably learn.
MIN_SCALE = 1e-4


def positive_scale(raw, min_scale=MIN_SCALE):
    """A standard deviation (or another positive parameter: a rate, a count) from an
    unconstrained value.

    softplus grows linearly, so unlike exp it cannot overflow; adding ``min_scale`` keeps it from
    collapsing to 0. Computed in float32 whatever the compute dtype.
    """
    return tf.nn.softplus(tf.cast(raw, tf.float32)) + min_scale


@keras.saving.register_keras_serializable(package="tfvae")
class DiagonalGaussian(keras.layers.Layer):
    """Hidden units [B, H] -> q(z|x) = N(mu, diag(sigma^2)), batch shape B, event shape [D]."""

    def __init__(self, latent_dim, min_scale=MIN_SCALE, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = int(latent_dim)
        self.min_scale = float(min_scale)
        self.params = keras.layers.Dense(2 * self.latent_dim, name="params")

    def build(self, input_shape):
        self.params.build(input_shape)

    def call(self, h):
        loc, raw_scale = tf.split(self.params(h), 2, axis=-1)
        return DiagonalNormal(
            loc=tf.cast(loc, tf.float32),
            scale_diag=positive_scale(raw_scale, self.min_scale),
        )

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim, "min_scale": self.min_scale}


class Likelihood(keras.layers.Layer):
    """Base of the decoder heads: hidden units -> p(x|z), a ``tfd`` distribution with event E.

    A head owns one affine map from hidden units to per-pixel parameters (:meth:`_dense`): a body
    that ends in a flat vector [N, H] gets a dense map to prod(E) values; a convolutional body
    that ends in a feature map [N, *E[:-1], F] gets a per-pixel (1x1) map to E[-1] channels.
    ``call(h, batch_shape)`` restores leading sample dimensions that the decoder flattened
    (:meth:`_to_event`). The mean of its distribution is the ``x_mean`` of ``decode``,
    ``sample`` and the exported signatures.
    """

    # Whether x must lie in [0, 1] (the support of a Bernoulli): the input checks of the model,
    # the training data and the exported graphs refuse other values.
    unit_interval = False
    # The values x takes, one of SUPPORTS: "unit_interval" (in [0, 1]), "real" (any finite
    # value) or "count" (non-negative integers). A subclass that sets only one of
    # ``unit_interval`` and ``support`` gets the other to match (``__init_subclass__``).
    support = "real"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "unit_interval" in own and "support" not in own:
            cls.support = "unit_interval" if cls.unit_interval else "real"
        elif "support" in own and "unit_interval" not in own:
            cls.unit_interval = cls.support == "unit_interval"
        if cls.support not in SUPPORTS:
            raise ValueError(f"{cls.__name__}.support: expected one of {SUPPORTS}, "
                             f"got {cls.support!r}")

    def __init__(self, event_shape, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = tuple(int(d) for d in event_shape)

    @classmethod
    def from_settings(cls, event_shape, name="likelihood", **settings):
        """The head of a model whose likelihood settings (``gaussian_scale``) are ``settings``;
        a head with settings of its own reads them here."""
        return cls(event_shape, name=name)

    def draw(self, p_x, seed):
        """One x ~ ``p_x`` [B, *E] (what :meth:`call` returned) for a stateless ``seed`` [2]."""
        return p_x.sample(seed=seed)

    def _dense(self, input_shape, name):
        units = self.event_shape[-1] if len(input_shape) > 2 else math.prod(self.event_shape)
        layer = keras.layers.Dense(units, name=name)
        layer.build(input_shape)
        return layer

    def _to_event(self, params, batch_shape):
        params = tf.cast(params, tf.float32)
        leading = tf.shape(params)[:1] if batch_shape is None else batch_shape
        return tf.reshape(params, tf.concat([leading, list(self.event_shape)], axis=0))

    def get_config(self):
        return {**super().get_config(), "event_shape": list(self.event_shape)}


class CrossEntropyBernoulli(tfd.Bernoulli):
    """``tfd.Bernoulli`` whose log-probability is x * logits - softplus(logits).

    The same value as TFP's (the negated sigmoid cross-entropy) in three elementwise passes with
    one softplus, where TFP's computes log sigmoid(l) and log sigmoid(-l) (two softpluses) and
    weights them by x and 1 - x. ``log_likelihood`` decodes thousands of samples per image, and
    these passes over the logits are most of its time beside the decoder's products
    (``benchmarks/README.md``).
    """

    def _log_prob(self, event):
        logits = self._logits_parameter_no_checks()
        return tf.cast(event, logits.dtype) * logits - tf.nn.softplus(logits)


@keras.saving.register_keras_serializable(package="tfvae")
class BernoulliLikelihood(Likelihood):
    """Hidden units -> p(x|z) = prod Bernoulli(sigmoid(logits)), event shape E.

    Its log-probability is -sigmoid_cross_entropy, which is also defined for grey levels in [0, 1]
    (the paper's MNIST setting when inputs are not binarized).
    """

    unit_interval = True
    support = "unit_interval"

    def build(self, input_shape):
        self.logits = self._dense(input_shape, "logits")

    def call(self, h, batch_shape=None):
        logits = self._to_event(self.logits(h), batch_shape)
        return tfd.Independent(
            CrossEntropyBernoulli(logits=logits, dtype=tf.float32),
            reinterpreted_batch_ndims=len(self.event_shape),
        )

    def draw(self, p_x, seed):
        # tfvae.noise, so that an XLA-compiled step draws what an uncompiled one does.
        return noise.bernoulli(p_x.distribution.probs_parameter(), seed)


@keras.saving.register_keras_serializable(package="tfvae")
class GaussianLikelihood(Likelihood):
    """Hidden units -> p(x|z) = N(sigmoid(W h + b), diag(sigma^2)), event shape E.

    The mean goes through a sigmoid as in the paper's Frey Face model (appendix C.2). ``scale``:
    ``"network"`` (the paper: the decoder outputs the variance too), ``"learned"`` (one free
    standard deviation per pixel, the same for every z) or a positive float (fixed).
    :class:`NormalLikelihood` is the same head with an unbounded mean (:meth:`squash_mean`).
    """

    support = "real"

    def __init__(self, event_shape, scale="network", min_scale=MIN_SCALE, **kwargs):
        super().__init__(event_shape, **kwargs)
        if not (scale in ("network", "learned") or (isinstance(scale, (int, float)) and scale > 0)):
            raise InputError("gaussian scale", "'network', 'learned' or a positive float", repr(scale))
        self.scale = scale
        self.min_scale = float(min_scale)

    @classmethod
    def from_settings(cls, event_shape, name="likelihood", gaussian_scale="network", **settings):
        return cls(event_shape, scale=gaussian_scale, name=name)

    def build(self, input_shape):
        self.mean = self._dense(input_shape, "mean")
        if self.scale == "network":
            self.raw_scale = self._dense(input_shape, "raw_scale")
        elif self.scale == "learned":
            self.pixel_raw_scale = self.add_weight(
                name="pixel_raw_scale", shape=self.event_shape, initializer="zeros"
            )

    def squash_mean(self, mean):
        """The mean of p(x|z) from the affine map's output: in (0, 1) through a sigmoid."""
        return tf.sigmoid(mean)

    def call(self, h, batch_shape=None):
        mean = self.squash_mean(self._to_event(self.mean(h), batch_shape))
        if self.scale == "network":
            scale = positive_scale(self._to_event(self.raw_scale(h), batch_shape), self.min_scale)
        elif self.scale == "learned":
            scale = positive_scale(self.pixel_raw_scale, self.min_scale)
        else:
            scale = tf.constant(float(self.scale), tf.float32)
        return tfd.Independent(
            tfd.Normal(loc=mean, scale=scale), reinterpreted_batch_ndims=len(self.event_shape)
        )

    def draw(self, p_x, seed):
        # tfvae.noise, so that an XLA-compiled step draws what an uncompiled one does.
        pixels = p_x.distribution
        return pixels.loc + pixels.scale * noise.standard_normal(
            seed, [], tf.shape(pixels.loc)[0], self.event_shape)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "min_scale": self.min_scale}


@keras.saving.register_keras_serializable(package="tfvae")
class NormalLikelihood(GaussianLikelihood):
    """Hidden units -> p(x|z) = N(W h + b, diag(sigma^2)), event shape E: real-valued data of any
    range (rows of a table, standardized features), where ``"gaussian"`` bounds the mean to (0, 1).

    Everything else is :class:`GaussianLikelihood`'s: ``scale`` (the model's ``gaussian_scale``),
    the layers and weights, and the draw through ``tfvae.noise``.

    With the model's ``feature_mean`` m and ``feature_scale`` s (each [prod E]), the network
    models standardized features and the head the data itself: p(x|z) = N(m + s mu, s sigma),
    the density of x = m + s x' for x' ~ N(mu, sigma), Jacobian included. Fitting m and s on the
    training data is what lets a network whose outputs start near 0 and 1 fit features of any
    location and spread.
    """

    def __init__(self, event_shape, scale="network", min_scale=MIN_SCALE, feature_mean=None,
                 feature_scale=None, **kwargs):
        super().__init__(event_shape, scale, min_scale, **kwargs)
        self.feature_mean = None if feature_mean is None else [float(v) for v in feature_mean]
        self.feature_scale = None if feature_scale is None else [float(v) for v in feature_scale]

    @classmethod
    def from_settings(cls, event_shape, name="likelihood", gaussian_scale="network",
                      feature_mean=None, feature_scale=None, **settings):
        return cls(event_shape, scale=gaussian_scale, feature_mean=feature_mean,
                   feature_scale=feature_scale, name=name)

    def squash_mean(self, mean):
        return mean

    def call(self, h, batch_shape=None):
        p_x = super().call(h, batch_shape)
        if self.feature_mean is None:
            return p_x
        shift, stretch = (tf.reshape(tf.constant(v, tf.float32), self.event_shape)
                          for v in (self.feature_mean, self.feature_scale))
        features = p_x.distribution
        return tfd.Independent(
            tfd.Normal(loc=shift + stretch * features.loc, scale=stretch * features.scale),
            reinterpreted_batch_ndims=len(self.event_shape))

    def get_config(self):
        return {**super().get_config(), "feature_mean": self.feature_mean,
                "feature_scale": self.feature_scale}


@keras.saving.register_keras_serializable(package="tfvae")
class PoissonLikelihood(Likelihood):
    """Hidden units -> p(x|z) = prod Poisson(rate), rate = softplus(W h + b) + MIN_SCALE: counts.

    softplus rather than exp: exp overflows float32 once W h + b passes ~88 (an infinite rate
    makes log p(x|z) and its gradients NaN) and its gradient grows as fast as the rate, so one
    large step can run away; softplus grows linearly with a gradient at most 1. The MIN_SCALE
    floor keeps log(rate) finite when softplus underflows to 0. The mean of p(x|z) is the rate.
    """

    support = "count"

    def build(self, input_shape):
        self.raw_rate = self._dense(input_shape, "raw_rate")

    def call(self, h, batch_shape=None):
        rate = positive_scale(self._to_event(self.raw_rate(h), batch_shape))
        return tfd.Independent(tfd.Poisson(rate=rate),
                               reinterpreted_batch_ndims=len(self.event_shape))

    def draw(self, p_x, seed):
        # TFP's sampler: stateless given ``seed`` and, unlike tf.random.stateless_poisson,
        # compiled by XLA (its numbers there differ from an uncompiled draw's, though).
        return tf.cast(p_x.sample(seed=seed), tf.float32)


@keras.saving.register_keras_serializable(package="tfvae")
class NegativeBinomialLikelihood(Likelihood):
    """Hidden units -> p(x|z) = prod NegativeBinomial(r, logits l): counts more dispersed than a
    Poisson's. r = softplus(W_r h + b_r) + MIN_SCALE, l = W_l h + b_l.

    TFP's parameterization: x counts successes, of probability p = sigmoid(l), before r failures,
    so mean r e^l and variance mean / (1 - p) = mean (1 + mean / r); it is scipy's
    ``nbinom(n=r, p=sigmoid(-l))``. A draw is the gamma-Poisson mixture it is:
    Poisson(lambda), lambda ~ Gamma(r, rate e^-l).
    """

    support = "count"

    def build(self, input_shape):
        self.raw_total_count = self._dense(input_shape, "raw_total_count")
        self.logits = self._dense(input_shape, "logits")

    def call(self, h, batch_shape=None):
        total_count = positive_scale(self._to_event(self.raw_total_count(h), batch_shape))
        logits = self._to_event(self.logits(h), batch_shape)
        return tfd.Independent(
            tfd.NegativeBinomial(total_count=total_count, logits=logits,
                                 require_integer_total_count=False),
            reinterpreted_batch_ndims=len(self.event_shape))

    def draw(self, p_x, seed):
        # TFP's gamma and Poisson samplers, stateless given ``seed`` and compiled by XLA (TFP's
        # NegativeBinomial.sample and tf.random.stateless_gamma/poisson are not).
        counts = p_x.distribution
        gamma_seed, poisson_seed = tf.unstack(noise.split(seed))
        rate = tfd.Gamma(concentration=counts.total_count,
                         log_rate=-counts.logits).sample(seed=gamma_seed)
        return tf.cast(tfd.Poisson(rate=rate).sample(seed=poisson_seed), tf.float32)


def likelihood_layer(likelihood, event_shape, name="likelihood", **settings):
    """The decoder head registered as ``likelihood`` in ``LIKELIHOODS``, given the model's
    likelihood ``settings`` (``gaussian_scale``, ``feature_mean``, ``feature_scale``): each
    head takes those it reads (:meth:`Likelihood.from_settings`)."""
    return LIKELIHOODS.get(likelihood, "likelihood").from_settings(
        event_shape, name=name, **settings)
