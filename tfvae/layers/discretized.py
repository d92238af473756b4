"""The discretized logistic mixture: p(x|z) of 8-bit pixels (Salimans et al., 2017, PixelCNN++;
used by VDVAE and NVAE).

A pixel value x is one of the 256 grey levels k/255 (how tfvae holds 0..255 images,
``tfvae.data.validation``). Each value's distribution is a mixture of K logistics L(mu_j, s_j)
on [0, 1], binned: level k has the mass of ((k - 0.5)/255, (k + 0.5)/255], the first and last
bins extended to -inf and +inf so that the 256 masses sum to 1.

Bits per dimension: log p(x|z) is already the log-probability of the bin (not a density), so a
bound L on log p(x) in nats gives -L / (D ln 2) bits per dimension with no 256 (or 255)
rescaling; a density on [0, 1] would need log 256 per dimension added to become one
(:func:`bits_per_dim`).

The channels of a colour pixel are independent given z: PixelCNN++ couples them (each channel's
mean a linear function of the previous channels' values), which tfvae leaves out so that each
value keeps its own distribution (a missing value is left out alone, ``tfvae.layers.missing``)
and a head takes any number of channels and vectors too.
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import noise
from tfvae.checks import check_int
from tfvae.layers.likelihoods import MIN_SCALE, Likelihood, positive_scale

tfd = tfp.distributions

LEVELS = 256
_BIN = 1.0 / (LEVELS - 1)  # the width of a bin on [0, 1]
# The scale a body's output of 0 gives (a shift added before the softplus): softplus(0) alone is
# 0.69, a logistic as wide as 177 levels. An optimizer moves the raw scale by about its learning
# rate per step, and softplus is exp for small scales, so a start this wide leaves the bound far
# from its best for thousands of steps (a resnet VAE on 64x64 colour images after 3 minutes:
# 6.64 bits per dimension from 0.69, 6.29 from 0.05).
START_SCALE = 0.05
_SCALE_SHIFT = math.log(math.expm1(START_SCALE))


def bits_per_dim(bound, dimensions):
    """The bound ``bound`` (nats per example) of a discrete 8-bit likelihood in bits per value."""
    return -bound / (dimensions * math.log(2))


class DiscretizedLogisticMixture(tfd.Distribution):
    """Per value: a mixture of K logistics binned on the 256 levels k/255, event shape [].

    ``logits``, ``loc`` and ``scale`` are [*batch, K]; log-probabilities, means and samples are
    [*batch]. A value off the grid is scored at its nearest level.
    """

    def __init__(self, logits, loc, scale, validate_args=False, allow_nan_stats=True,
                 name="DiscretizedLogisticMixture"):
        parameters = dict(locals())
        self._logits = tf.convert_to_tensor(logits, tf.float32)
        self._loc = tf.convert_to_tensor(loc, tf.float32)
        self._scale = tf.convert_to_tensor(scale, tf.float32)
        super().__init__(dtype=tf.float32, reparameterization_type=tfd.NOT_REPARAMETERIZED,
                         validate_args=validate_args, allow_nan_stats=allow_nan_stats,
                         parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return {name: tfp.util.ParameterProperties(event_ndims=1)
                for name in ("logits", "loc", "scale")}

    @property
    def logits(self):
        return self._logits

    @property
    def loc(self):
        return self._loc

    @property
    def scale(self):
        return self._scale

    def _event_shape(self):
        return tf.TensorShape([])

    def _event_shape_tensor(self):
        return tf.constant([], tf.int32)

    def component_log_prob(self, x):
        """log P(level of x | component j), [*batch, K].

        With a = (x + 0.5/255 - mu)/s and b = (x - 0.5/255 - mu)/s, the bin's mass is
        sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - e^(b - a)): three terms that stay
        finite in every tail, where the difference of two sigmoids underflows to 0 (PixelCNN++
        falls back to the density at the centre there). The first level drops the sigmoid(-b)
        factor (its bin reaches -inf), the last sigmoid(a) (+inf), both the third.

        Written with the ops LiteRT and ONNX have: 1 - e^(-c) as tanh(c/2) (1 + e^(-c)) (no
        expm1, and no cancellation for a wide bin), the factors dropped by multiplying with a
        mask (every term is finite) rather than by a broadcast select.
        """
        level = tf.clip_by_value(tf.round(tf.cast(x, tf.float32) * (LEVELS - 1)), 0, LEVELS - 1)
        centred = level[..., None] * _BIN - self._loc
        upper = (centred + 0.5 * _BIN) / self._scale
        lower = (centred - 0.5 * _BIN) / self._scale
        inner_above = tf.cast(level > 0, tf.float32)[..., None]
        inner_below = tf.cast(level < LEVELS - 1, tf.float32)[..., None]
        log_below_upper = -tf.nn.softplus(-upper)  # log sigmoid(a)
        log_above_lower = -tf.nn.softplus(lower)  # log sigmoid(-b)
        width = _BIN / self._scale  # a - b
        log_width = tf.math.log(tf.math.tanh(0.5 * width)) + tf.nn.softplus(-width)
        return (log_below_upper * inner_below + log_above_lower * inner_above
                + log_width * inner_below * inner_above)

    def _log_weights(self):
        """log of each component's weight, [*batch, K]: a log-softmax of any rank (TF's CPU
        softmax kernels take at most five dimensions, and a batch of draws has six)."""
        return self._logits - tf.reduce_logsumexp(self._logits, axis=-1, keepdims=True)

    def _log_prob(self, x):
        return tf.reduce_logsumexp(self._log_weights() + self.component_log_prob(x), axis=-1)

    def _mean(self):
        # The mean of the mixture clipped to [0, 1], in closed form: the integral of
        # 1 - F(t) over [0, 1] is s (softplus(mu/s) - softplus((mu - 1)/s)). The binned mean is
        # the midpoint rule of the same integral over the 255 bins, within half a level of it.
        s = self._scale
        clipped = s * (tf.nn.softplus(self._loc / s) - tf.nn.softplus((self._loc - 1.0) / s))
        return tf.reduce_sum(tf.exp(self._log_weights()) * clipped, axis=-1)

    def from_uniforms(self, u_component, u_value):
        """The sample whose component and value the uniforms ``u_component`` [*batch, K] (by
        Gumbel-max) and ``u_value`` [*batch] (by the inverse CDF) pick, on the grid."""
        gumbel = -tf.math.log(-tf.math.log(u_component))
        chosen = tf.one_hot(tf.argmax(self._logits + gumbel, axis=-1), tf.shape(self._logits)[-1])
        loc = tf.reduce_sum(chosen * self._loc, axis=-1)
        scale = tf.reduce_sum(chosen * self._scale, axis=-1)
        value = loc + scale * (tf.math.log(u_value) - tf.math.log1p(-u_value))
        return tf.clip_by_value(tf.round(value * (LEVELS - 1)), 0, LEVELS - 1) * _BIN

    def _sample_n(self, n, seed=None):
        component_seed, value_seed = tfp.random.split_seed(seed, n=2)
        shape = tf.concat([[n], tf.shape(self._logits)], axis=0)
        tiny = 2.0 ** -24  # keeps log(u) and log(1 - u) finite
        u_component = tf.random.stateless_uniform(shape, component_seed, tiny, 1 - tiny)
        u_value = tf.random.stateless_uniform(shape[:-1], value_seed, tiny, 1 - tiny)
        return self.from_uniforms(u_component, u_value)


@keras.saving.register_keras_serializable(package="tfvae")
class DiscretizedLogisticLikelihood(Likelihood):
    """Hidden units -> p(x|z) = prod DiscretizedLogisticMixture, event shape E: 8-bit pixels.

    Per value, ``components`` K mixture logits, locations mu = W h + b (on [0, 1]) and scales
    s = softplus(W h + b + c) + MIN_SCALE, c such that W h + b = 0 gives ``START_SCALE``. K = 1
    (the default, the model's ``logistic_components``) has the one logistic of a per-pixel
    Gaussian's size (no logits), so that a dense head over all pixels stays as large as the
    "gaussian" one's; PixelCNN++ and VDVAE take K = 10, worth it behind a convolutional body
    whose head is a per-pixel map.
    """

    support = "eight_bit"

    def __init__(self, event_shape, components=1, min_scale=MIN_SCALE, **kwargs):
        super().__init__(event_shape, **kwargs)
        self.components = check_int("logistic_components", components)
        self.min_scale = float(min_scale)

    @classmethod
    def from_settings(cls, event_shape, name="likelihood", logistic_components=1, **settings):
        return cls(event_shape, components=logistic_components, name=name)

    @property
    def _per_value(self):
        return 2 if self.components == 1 else 3

    def build(self, input_shape):
        spatial = len(input_shape) > 2
        units = self.event_shape[-1] if spatial else math.prod(self.event_shape)
        self.params = keras.layers.Dense(units * self._per_value * self.components, name="params")
        self.params.build(input_shape)

    def call(self, h, batch_shape=None):
        params = tf.cast(self.params(h), tf.float32)
        leading = tf.shape(params)[:1] if batch_shape is None else batch_shape
        params = tf.reshape(params, tf.concat(
            [leading, list(self.event_shape), [self._per_value, self.components]], axis=0))
        if self.components == 1:
            loc, raw_scale = tf.unstack(params, axis=-2)
            logits = tf.zeros_like(loc)
        else:
            logits, loc, raw_scale = tf.unstack(params, axis=-2)
        # An output of 0 is a location of 0.5 (the middle of [0, 1]) and a scale of START_SCALE.
        mixture = DiscretizedLogisticMixture(
            logits, loc + 0.5, positive_scale(raw_scale + _SCALE_SHIFT, self.min_scale))
        return tfd.Independent(mixture, reinterpreted_batch_ndims=len(self.event_shape))

    def draw(self, p_x, seed):
        # tfvae.noise's uniforms, so that an XLA-compiled step draws what an uncompiled one does.
        mixture = p_x.distribution
        component_seed, value_seed = tf.unstack(noise.split(seed))
        shape = tf.shape(mixture.logits)
        return mixture.from_uniforms(noise.uniform(shape, component_seed),
                                     noise.uniform(shape[:-1], value_seed))

    def get_config(self):
        return {**super().get_config(), "components": self.components,
                "min_scale": self.min_scale}
