"""A deep hierarchy of latent groups in the top-down form (``latent_groups=L``, L >= 2) on the
residual body: LVAE (Sonderby et al., 2016), NVAE (Vahdat & Kautz, 2020), VDVAE (Child, 2021).

- Bottom-up (:class:`BottomUp`, the model's encoder): the resnet encoder's stem, blocks and
  pooling, keeping its activation a_r at each resolution r (H/2^r x W/2^r, r = 0..stages).
- Top-down (:class:`TopDown`, the decoder's body): from a learned state h at the lowest
  resolution, group i (at resolution r(i), the groups spread over the resolutions, lowest
  first) is a map z_i [H/2^r, W/2^r, C_z] (``channels`` = the model's ``latent_dim``) with

      p(z_i | z_<i)    = N(mu_i, sigma_i),                 (mu_i, sigma_i) = a conv of h,
      q(z_i | x, z_<i) = N(mu_i + dmu_i, sigma_i dsigma_i), (dmu_i, dsigma_i) = a net of [h, a_r],

  then h <- block(h + conv(z_i)); the decoder's own blocks and upsampling run between the
  resolutions, and the last h is what the likelihood head reads.

The posterior is NVAE's residual parameterization, relative to the prior (``docs/resnet.md``
says why): its last convolution starts at zero, so every group starts with q = p and a KL of 0,
and KL(q_i || p_i) = sum -log dsigma + (dsigma^2 + (dmu / sigma)^2 - 1) / 2.

The model's latent z is the groups' maps flattened and joined [*S, B, D], D = sum of their
sizes, so the estimators see one q(z|x) and one p(z): each is N(0, I) pushed through the
top-down pass (z_i = mu_i + sigma_i eps_i, mu_i and sigma_i functions of z_<i: a block-triangular
map whose log-determinant is sum log sigma), a ``tfd.TransformedDistribution``:
log q(z|x) = sum_i log q(z_i | x, z_<i) and log p(z) = sum_i log p(z_i | z_<i). Training takes
the KL per group in closed form along one pass instead (:meth:`TopDown.run` with ``eps``).

Shapes: ``N`` rows (examples times samples), ``B`` batch, ``S`` samples, ``D`` the latent's size.
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.activations import activation_function
from tfvae.layers.bodies import _build_chain
from tfvae.layers.diagonal_normal import DiagonalNormal
from tfvae.layers.likelihoods import positive_scale
from tfvae.layers.resnet import (STAGES, ResidualBlock, Upsampling, _ResNet, _blocks,
                                 bottom_up_layers)

tfd = tfp.distributions
tfb = tfp.bijectors

# softplus(_UNIT) = 1: a scale whose raw value starts at 0 starts at 1.
_UNIT = math.log(math.e - 1.0)


def group_resolutions(groups, stages=STAGES):
    """The resolution r of each group, top first: the groups spread evenly over the stages + 1
    resolutions, the lower ones taking the extra groups (VDVAE keeps most of its groups at low
    resolutions, where they cost least)."""
    return [stages - i * (stages + 1) // groups for i in range(groups)]


def group_shapes(image_shape, groups, channels, stages=STAGES):
    """Each group's map [h, w, channels]."""
    return [(image_shape[0] >> r, image_shape[1] >> r, channels)
            for r in group_resolutions(groups, stages)]


def _state_shape(image_shape, hidden, resolution):
    return (None, image_shape[0] >> resolution, image_shape[1] >> resolution, hidden)


@keras.saving.register_keras_serializable(package="tfvae")
class PosteriorShift(keras.layers.Layer):
    """(h, a) [N, h, w, F] each -> (dmu, dsigma) [N, h, w, channels]: q's shift and scale
    relative to the prior, from a bottleneck of [h, a] (1x1, 3x3 and 1x1 convolutions,
    ``width`` channels inside: VDVAE's posterior is such a bottleneck, a quarter of the state's
    width, which keeps a group at full resolution cheap); the last starts at zero (dmu = 0,
    dsigma = 1: q = p)."""

    def __init__(self, channels, width, activation, kernel_initializer="he_uniform", **kwargs):
        super().__init__(**kwargs)
        self.channels, self.width, self.activation = int(channels), int(width), activation
        self.activate = activation_function(activation)
        self.convs = [keras.layers.Conv2D(self.width, 1, name="in",
                                          kernel_initializer=kernel_initializer),
                      keras.layers.Conv2D(self.width, 3, padding="same", name="mid",
                                          kernel_initializer=kernel_initializer),
                      keras.layers.Conv2D(2 * self.channels, 1, name="params",
                                          kernel_initializer="zeros")]

    def build(self, state_shape):
        _build_chain(self.convs, (*state_shape[:-1], 2 * state_shape[-1]))

    def call(self, h, a):
        x = tf.concat([h, tf.cast(a, h.dtype)], axis=-1)
        for conv in self.convs:
            x = conv(self.activate(x))
        shift, raw = tf.split(tf.cast(x, tf.float32), 2, -1)
        return shift, positive_scale(raw + _UNIT)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "width": self.width,
                "activation": self.activation}


@keras.saving.register_keras_serializable(package="tfvae")
class BottomUp(_ResNet):
    """x [B, H, W, C] -> the activation at each resolution [a_0, ..., a_stages], a_r
    [B, H/2^r, W/2^r, hidden]: the resnet encoder's layers, the model's encoder. It holds q's
    own weights too: a :class:`PosteriorShift` per group (``posteriors``)."""

    spatial = True

    def __init__(self, image_shape, hidden=64, depth=1, activation="gelu",
                 kernel_initializer="he_uniform", stages=STAGES, groups=2, channels=4, **kwargs):
        super().__init__(image_shape, hidden, depth, activation, kernel_initializer, stages,
                         **kwargs)
        self.groups, self.channels = int(groups), int(channels)
        self.layers_ = bottom_up_layers(self, activation)
        self.posteriors = [PosteriorShift(self.channels, max(1, self.hidden // 4), activation,
                                          self.kernel_initializer, name=f"posterior_{i}")
                           for i in range(self.groups)]

    def build(self, input_shape):
        self.check_image_shape(tuple(input_shape[1:]), stages=self.stages)
        shape = input_shape
        for layer in self.layers_:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        for posterior, r in zip(self.posteriors, group_resolutions(self.groups, self.stages)):
            posterior.build(_state_shape(self.image_shape, self.hidden, r))

    def call(self, x):
        features = []
        for layer in self.layers_:
            if isinstance(layer, keras.layers.AveragePooling2D):
                features.append(x)  # the last activation at this resolution
            x = layer(x)
        return features + [x]

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "channels": self.channels}


@keras.saving.register_keras_serializable(package="tfvae")
class TopDown(_ResNet):
    """The decoder's body: z [N, D] (the groups' maps, flattened and joined) -> the top-down
    pass given z -> features [N, H, W, hidden] for the likelihood head. :meth:`run` is the pass
    itself, which the prior and the posterior (:func:`groups_prior`, :func:`groups_posterior`)
    and the training step's bound take too."""

    def __init__(self, image_shape, hidden=64, depth=1, activation="gelu",
                 kernel_initializer="he_uniform", stages=STAGES, groups=2, channels=4, **kwargs):
        super().__init__(image_shape, hidden, depth, activation, kernel_initializer, stages,
                         **kwargs)
        self.groups, self.channels = int(groups), int(channels)
        self.resolutions = group_resolutions(self.groups, self.stages)
        self.shapes = group_shapes(self.image_shape, self.groups, self.channels, self.stages)
        self.sizes = [math.prod(shape) for shape in self.shapes]
        self.activate = activation_function(activation)
        # As in the resnet body, each residual branch starts smaller the more there are.
        total = self.groups + self.depth * (self.stages + 1)
        self.priors = [keras.layers.Conv2D(2 * self.channels, 3, padding="same",
                                           kernel_initializer="zeros", name=f"prior_{i}")
                       for i in range(self.groups)]
        self.from_z = [keras.layers.Conv2D(self.hidden, 1, name=f"from_z_{i}",
                                           kernel_initializer=keras.initializers.VarianceScaling(
                                               1.0 / total, mode="fan_in"))
                       for i in range(self.groups)]
        self.group_blocks = [ResidualBlock(self.hidden, activation, self.kernel_initializer,
                                           total, name=f"group_block_{i}")
                             for i in range(self.groups)]
        # Resolution r's blocks are stage_blocks[r * depth:(r + 1) * depth].
        self.stage_blocks = [block for r in range(self.stages + 1)
                             for block in _blocks(self.hidden, self.depth, activation,
                                                  self.kernel_initializer, r, total)]
        self.up = Upsampling(name="up")

    def build(self, input_shape):
        self.top = self.add_weight(name="top", shape=_state_shape(self.image_shape, self.hidden,
                                                                   self.stages)[1:],
                                   initializer="zeros")
        for i, r in enumerate(self.resolutions):
            state = _state_shape(self.image_shape, self.hidden, r)
            self.priors[i].build(state)
            self.from_z[i].build((None, *self.shapes[i]))
            self.group_blocks[i].build(state)
        for r in range(self.stages + 1):
            for block in self.stage_blocks[r * self.depth:(r + 1) * self.depth]:
                block.build(_state_shape(self.image_shape, self.hidden, r))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.image_shape[:2], self.hidden)

    def call(self, z):
        return self.run(z=z)["h"]

    def run(self, eps=None, z=None, features=None, posteriors=None):
        """One top-down pass over N rows. Each group's z_i is given (``z`` [N, D]) or drawn as
        mu_i + sigma_i eps_i (``eps`` [N, D]); (mu_i, sigma_i) are the prior's, or, given the
        bottom-up ``features`` (of B rows, N a multiple of B: the rows are S samples of the batch,
        sample-major) and the encoder's ``posteriors``, the posterior's.

        Returns ``h`` (the last features), ``z`` and ``eps`` [N, D], ``scale`` [N, D] (sigma),
        ``log_scale`` [N] (sum log sigma: the pass's log-determinant) and, with the posterior,
        ``kl`` [N, L] (KL(q_i || p_i) of each group, in closed form) and ``log_prior`` [N]
        (log p(z) = sum_i log p(z_i | z_<i) of the z drawn: the prior's pass given that z
        computes the same mu_i and sigma_i, so one pass gives both densities).
        """
        given = z if z is not None else eps
        rows = tf.shape(given)[0]
        given = tf.split(tf.cast(given, tf.float32), self.sizes, axis=-1)
        if features is not None:
            features = [tf.tile(a, [rows // tf.shape(a)[0], 1, 1, 1]) for a in features]
        h = tf.tile(tf.cast(self.top, self.compute_dtype)[None], [rows, 1, 1, 1])
        out = {name: [] for name in ("z", "eps", "scale", "kl", "log_prior")}
        for r in range(self.stages, -1, -1):
            if r < self.stages:
                h = self.up(h)
            for i in (i for i, at in enumerate(self.resolutions) if at == r):
                params = tf.cast(self.priors[i](self.activate(h)), tf.float32)
                loc, raw = tf.split(params, 2, axis=-1)
                scale = positive_scale(raw + _UNIT)
                value = tf.reshape(given[i], [-1, *self.shapes[i]])
                if features is not None:
                    shift, factor = posteriors[i](h, features[r])
                    # KL(q_i || p_i) from q's shift and scale relative to p alone (the module's
                    # docstring): no expm1, which ONNX lacks, as TFP's Normal KL has.
                    out["kl"].append(tf.reduce_sum(
                        0.5 * (tf.square(factor) + tf.square(shift / scale) - 1.0)
                        - tf.math.log(factor), axis=[1, 2, 3]))
                    if z is None:  # the prior's noise of z_i = mu + sigma dsigma eps + dmu
                        out["log_prior"].append(tf.reshape(standard_normal_log_prob(
                            factor * value + shift / scale) - tf.math.log(scale),
                            [rows, self.sizes[i]]))
                    loc, scale = loc + shift, scale * factor
                if z is None:
                    z_i, eps_i = loc + scale * value, value
                else:
                    z_i, eps_i = value, (value - loc) / scale
                for name, part in (("z", z_i), ("eps", eps_i), ("scale", scale)):
                    out[name].append(tf.reshape(part, [rows, self.sizes[i]]))
                h = self.group_blocks[i](self.add_z(h, i, z_i))
            for block in self.stage_blocks[r * self.depth:(r + 1) * self.depth]:
                h = block(h)
        result = {name: tf.concat(parts, axis=-1) for name, parts in out.items() if parts}
        result["log_scale"] = tf.reduce_sum(tf.math.log(result["scale"]), axis=-1)
        if out["kl"]:
            result["kl"] = tf.stack(out["kl"], axis=-1)
        if out["log_prior"]:
            result["log_prior"] = tf.reduce_sum(result["log_prior"], axis=-1)
        result["h"] = self.activate(h)
        return result

    def add_z(self, h, i, z_i):
        """h + from_z_i(z_i), the 1x1 convolution written as a product over the channels. As a
        convolution, oneDNN fuses it with the addition (Conv2D + BiasAdd + Add), and that fused
        op crashed the process when two calls ran it at once: a loop's parallel iterations, or
        two requests to one export (TF 2.21, CPU)."""
        layer = self.from_z[i]
        kernel = tf.cast(layer.kernel[0, 0], h.dtype)
        return h + (tf.tensordot(tf.cast(z_i, h.dtype), kernel, 1) + tf.cast(layer.bias, h.dtype))

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "channels": self.channels}


def standard_normal_log_prob(eps):
    """log N(eps; 0, 1), elementwise."""
    return -0.5 * (tf.square(eps) + math.log(2 * math.pi))


class _TopDownPass(tfb.Bijector):
    """eps [..., D] -> z [..., D] through :meth:`TopDown.run`, any leading shape (the rows of
    the posterior's: [*S, B]). Each pass is kept under both its ends, so the log-density of a
    z just drawn, and its noise, need no second pass."""

    def __init__(self, top, features=None, posteriors=None):
        parameters = dict(locals())
        self._top, self._features, self._posteriors = top, features, posteriors
        self._passes = {}
        super().__init__(forward_min_event_ndims=1, validate_args=False, parameters=parameters,
                         name="top_down")

    def run(self, value, given):
        """The pass from ``value`` taken as ``given`` ("eps" or "z"), reshaped to its shape."""
        key = (value.ref(), given)
        if key not in self._passes:
            shape = tf.shape(value)
            out = self._top.run(**{given: tf.reshape(value, [-1, shape[-1]])},
                                features=self._features, posteriors=self._posteriors)
            result = {name: tf.reshape(out[name], shape) for name in ("z", "eps", "scale")}
            result["log_scale"] = tf.reshape(out["log_scale"], shape[:-1])
            result["h"] = out["h"]  # rows: the leading dims flattened
            self._passes[(result["z"].ref(), "z")] = self._passes[key] = result
            self._passes[(result["eps"].ref(), "eps")] = result
        return self._passes[key]

    def at_mean(self, mean):
        """The pass from the base's ``mean`` (eps = 0), once: the distribution's ``mean()`` and
        ``stddev()`` both read it (``encode`` asks for the two)."""
        if "mean" not in self._passes:
            self._passes["mean"] = self.run(mean, "eps")
        return self._passes["mean"]

    def _forward(self, eps):
        return self.run(eps, "eps")["z"]

    def _inverse(self, z):
        return self.run(z, "z")["eps"]

    def _forward_log_det_jacobian(self, eps):
        # TFP takes log q(z) as that of eps = inverse(z) less this: the inverse's pass, kept.
        return self.run(eps, "eps")["log_scale"]


class GroupsDistribution(tfd.TransformedDistribution):
    """N(0, I) through the top-down pass: p(z) or q(z|x) of the whole hierarchy, event [D].
    ``mean()`` is each group's mean given the means of the groups above (the pass with
    eps = 0), ``stddev()`` each group's sigma on that path."""

    def _mean(self, **kwargs):
        return self.bijector.at_mean(self.distribution.mean())["z"]

    def _stddev(self, **kwargs):
        return self.bijector.at_mean(self.distribution.mean())["scale"]


def groups_prior(top):
    """p(z) = prod_i p(z_i | z_<i), batch [], event [D]."""
    return GroupsDistribution(DiagonalNormal(loc=tf.zeros([sum(top.sizes)])),
                              _TopDownPass(top))


def groups_posterior(top, features, posteriors):
    """q(z|x) = prod_i q(z_i | x, z_<i) given the bottom-up ``features`` of B images, batch [B],
    event [D]."""
    batch = tf.shape(features[0])[0]
    return GroupsDistribution(
        DiagonalNormal(loc=tf.zeros(tf.stack([batch, sum(top.sizes)]))),
        _TopDownPass(top, features, posteriors))
