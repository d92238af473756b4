"""The residual convolutional bodies (``architecture="resnet"``): images of any size whose height
and width divide by 2^stages, grey or colour.

The block is VDVAE's (Child, 2021): a bottleneck x + c1(a(c3(a(c3(a(c1(a(x)))))))) of 1x1, 3x3,
3x3 and 1x1 convolutions, a quarter of the width inside, with no normalization, and its last
convolution initialized 1/(number of blocks) times smaller so that the sum of the blocks starts
near the identity. NVAE's block (batch normalization, Swish, squeeze-and-excitation) is left out:
batch statistics make a model's output depend on the batch it is in (training against
inference, the S samples of z decoded together), which the bound, the importance-sampled
log p(x) and the exported signatures would all see. The activation is the model's
``activation`` (VDVAE's is ``gelu``).

Resolutions as VDVAE's too: average pooling halves H and W between stages in the encoder and
nearest-neighbour upsampling doubles them in the decoder, the width ``hidden`` the same at every
resolution. ``depth`` is the number of blocks at each of the ``stages + 1`` resolutions.
"""

import math

import keras
import tensorflow as tf

from tfvae.checks import check_int
from tfvae.errors import InputError, arg
from tfvae.layers.activations import activation_function
from tfvae.layers.bodies import Body, _build_chain, _call_chain

# Halvings of H and W: those of the convolutional body, so images that one takes this one does.
STAGES = 2


class ResidualBlock(keras.layers.Layer):
    """[N, H, W, C] -> x + the bottleneck of x, [N, H, W, C]."""

    def __init__(self, width, activation, kernel_initializer, blocks, **kwargs):
        super().__init__(**kwargs)
        inner = max(1, width // 4)
        self.activation = activation_function(activation)
        convolution = dict(padding="same", kernel_initializer=kernel_initializer)
        self.convs = [keras.layers.Conv2D(inner, 1, name="in", **convolution),
                      keras.layers.Conv2D(inner, 3, name="mid_0", **convolution),
                      keras.layers.Conv2D(inner, 3, name="mid_1", **convolution),
                      keras.layers.Conv2D(width, 1, padding="same", name="out",
                                          kernel_initializer=keras.initializers.VarianceScaling(
                                              1.0 / blocks, mode="fan_in"))]

    def build(self, input_shape):
        _build_chain(self.convs, input_shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, x):
        h = x
        for conv in self.convs:
            h = conv(self.activation(h))
        return x + h


class Upsampling(keras.layers.Layer):
    """Nearest-neighbour upsampling by 2, as Keras's UpSampling2D: each row, then each column,
    tiled twice beside itself and reshaped to the static height and width (the LiteRT converter
    refuses convolutions after a height it cannot infer). ``tf.repeat`` builds four times the
    ops for the same copies; a nearest resize has no XLA kernel for its gradient on the CPU."""

    def call(self, x):
        height, width, channels = x.shape[1:]
        rows = tf.reshape(tf.tile(x[:, :, None], [1, 1, 2, 1, 1]),
                          [-1, 2 * height, width, channels])
        return tf.reshape(tf.tile(rows[:, :, :, None], [1, 1, 1, 2, 1]),
                          [-1, 2 * height, 2 * width, channels])

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, 2 * height, 2 * width, channels)


def _blocks(width, depth, activation, kernel_initializer, resolution, total):
    return [ResidualBlock(width, activation, kernel_initializer, total,
                          name=f"block_{resolution}_{i}") for i in range(depth)]


def bottom_up_layers(body, activation):
    """A stem convolution, then ``body.depth`` blocks at each of its resolutions, average pooling
    between them: the encoder's pass up, as the plain encoder and the hierarchy's take it."""
    total = body.depth * (body.stages + 1)
    layers = [keras.layers.Conv2D(body.hidden, 3, padding="same", name="stem",
                                  kernel_initializer=body.kernel_initializer)]
    for resolution in range(body.stages + 1):
        if resolution:
            layers.append(keras.layers.AveragePooling2D(2, name=f"down_{resolution}"))
        layers += _blocks(body.hidden, body.depth, activation, body.kernel_initializer,
                          resolution, total)
    return layers


class _ResNet(Body):
    """What the encoder's and the decoder's bodies share: settings, checks, size."""

    def __init__(self, image_shape, hidden=64, depth=1, activation="gelu",
                 kernel_initializer="he_uniform", stages=STAGES, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.hidden = check_int("hidden", hidden)
        self.depth = check_int("depth", depth)
        self.stages = check_int("stages", stages, minimum=0)
        self.check_image_shape(self.image_shape, stages=self.stages)
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    @classmethod
    def make(cls, part, image_shape, hidden, depth, activation, kernel_initializer):
        body = ResNetEncoderBody if part == "encoder" else ResNetDecoderBody
        return body(image_shape, hidden, depth, activation, kernel_initializer, name="body")

    @classmethod
    def check_image_shape(cls, image_shape, argument="architecture 'resnet'", stages=STAGES):
        side = 2 ** stages
        if len(image_shape) not in (2, 3) or image_shape[0] % side or image_shape[1] % side:
            expected = (f"H and W divisible by {side} for {arg('architecture', 'resnet')}"
                        if len(image_shape) == 2
                        else f"an image shape [H, W, C] with H and W divisible by {side}")
            raise InputError(argument, expected, list(image_shape))

    @classmethod
    def estimated_weights(cls, image_shape, latent_dim, hidden, depth):
        # Per block 2 (1x1) + 2 x 9 (3x3) quarter-width products; the flattened lowest
        # resolution to and from z; the stem and the head.
        blocks = 2 * depth * (STAGES + 1) * (2 + 18 / 4) * hidden * hidden / 4
        lowest = math.prod(image_shape[:2]) // 4 ** STAGES * hidden
        return int(blocks + 3 * lowest * latent_dim + 2 * 9 * hidden * image_shape[-1])

    @property
    def _lowest(self):
        """H and W at the lowest resolution."""
        return tuple(d // 2 ** self.stages for d in self.image_shape[:2])

    def get_config(self):
        return {**super().get_config(), "image_shape": list(self.image_shape),
                "hidden": self.hidden, "depth": self.depth, "activation": self.activation,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "stages": self.stages}


@keras.saving.register_keras_serializable(package="tfvae")
class ResNetEncoderBody(_ResNet):
    """[N, H, W, C] -> a 3x3 convolution to ``hidden`` channels -> (``depth`` blocks, average
    pooling) ``stages`` times -> ``depth`` blocks -> a, flattened: [N, H W hidden / 4^stages].

    The member ``"resnet"`` of ``BODIES``: its decoder's body is a :class:`ResNetDecoderBody`.
    """

    spatial = True

    def __init__(self, image_shape, hidden=64, depth=1, activation="gelu",
                 kernel_initializer="he_uniform", stages=STAGES, **kwargs):
        super().__init__(image_shape, hidden, depth, activation, kernel_initializer, stages,
                         **kwargs)
        self.layers_ = bottom_up_layers(self, activation) + [
            keras.layers.Activation(activation_function(activation), name="out"),
            keras.layers.Flatten()]

    def build(self, input_shape):
        # The shape given, not the model's: a conditional model's labels are channels more.
        self.check_image_shape(tuple(input_shape[1:]), stages=self.stages)
        _build_chain(self.layers_, input_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], math.prod(self._lowest) * self.hidden)

    def call(self, x):
        return _call_chain(self.layers_, x)


@keras.saving.register_keras_serializable(package="tfvae")
class ResNetDecoderBody(_ResNet):
    """[N, D] -> Dense -> [N, H / 2^stages, W / 2^stages, hidden] -> ``depth`` blocks ->
    (nearest-neighbour upsampling, ``depth`` blocks) ``stages`` times -> a: [N, H, W, hidden],
    which the head maps pixel by pixel."""

    def __init__(self, image_shape, hidden=64, depth=1, activation="gelu",
                 kernel_initializer="he_uniform", stages=STAGES, **kwargs):
        super().__init__(image_shape, hidden, depth, activation, kernel_initializer, stages,
                         **kwargs)
        total = self.depth * (self.stages + 1)
        h, w = self._lowest
        self.layers_ = [keras.layers.Dense(h * w * self.hidden, name="from_z",
                                           kernel_initializer=self.kernel_initializer),
                        keras.layers.Reshape((h, w, self.hidden))]
        for resolution in range(self.stages, -1, -1):
            if resolution < self.stages:
                self.layers_.append(Upsampling(name=f"up_{resolution}"))
            self.layers_ += _blocks(self.hidden, self.depth, activation, self.kernel_initializer,
                                    resolution, total)
        self.layers_.append(keras.layers.Activation(activation_function(activation), name="out"))

    def build(self, input_shape):
        _build_chain(self.layers_, input_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.image_shape[:2], self.hidden)

    def call(self, z):
        return _call_chain(self.layers_, z)
