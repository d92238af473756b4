"""Network bodies: the layers between the data (or z) and a distribution head.

The paper's model is an MLP with one hidden layer of tanh units (appendix C); width, depth and
activation are options. The convolutional pair is for image data whose height and width divide
by 4. A body never ends in a distribution: the heads in ``tfvae.layers.likelihoods`` do.
"""

import math

import keras

from tfvae.checks import check_choice, check_int, check_weights
from tfvae.errors import InputError
from tfvae.options import ARCHITECTURES


def _build_chain(layers, shape):
    """Build ``layers`` one after another from ``shape``."""
    for layer in layers:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)


def _call_chain(layers, x):
    for layer in layers:
        x = layer(x)
    return x


@keras.saving.register_keras_serializable(package="tfvae")
class MLP(keras.layers.Layer):
    """[N, ...] -> flatten -> ``depth`` Dense layers of ``hidden`` units -> [N, hidden]."""

    def __init__(self, hidden=500, depth=1, activation="tanh", kernel_initializer="glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        check_int("hidden", hidden)
        check_int("depth", depth)
        self.hidden, self.depth, self.activation = hidden, depth, activation
        self.kernel_initializer = kernel_initializer
        self.flatten = keras.layers.Flatten()
        self.layers_ = [
            keras.layers.Dense(hidden, activation=activation, kernel_initializer=kernel_initializer,
                               name=f"dense_{i}")
            for i in range(depth)
        ]

    def build(self, input_shape):
        _build_chain(self.layers_, self.flatten.compute_output_shape(input_shape))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.hidden)

    def call(self, x):
        return _call_chain(self.layers_, self.flatten(x))

    def get_config(self):
        return {
            **super().get_config(),
            "hidden": self.hidden,
            "depth": self.depth,
            "activation": self.activation,
            "kernel_initializer": keras.initializers.serialize(
                keras.initializers.get(self.kernel_initializer)),
        }


def check_conv_shape(image_shape, argument="architecture 'conv'"):
    """Refuse an image shape [H, W, C] (or a size [H, W]) the two stride-2 layers cannot take."""
    if len(image_shape) not in (2, 3) or image_shape[0] % 4 or image_shape[1] % 4:
        expected = ("H and W divisible by 4 for --architecture conv" if len(image_shape) == 2
                    else "an image shape [H, W, C] with H and W divisible by 4")
        raise InputError(argument, expected, list(image_shape))


@keras.saving.register_keras_serializable(package="tfvae")
class ConvEncoderBody(keras.layers.Layer):
    """[N, H, W, C] -> two stride-2 convolutions -> Dense(hidden) -> [N, hidden]."""

    def __init__(self, hidden=256, filters=32, activation="relu", **kwargs):
        super().__init__(**kwargs)
        check_int("hidden", hidden)
        check_int("filters", filters)
        self.hidden, self.filters, self.activation = hidden, filters, activation
        self.layers_ = [
            keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation=activation),
            keras.layers.Conv2D(2 * filters, 3, strides=2, padding="same", activation=activation),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation=activation),
        ]

    def build(self, input_shape):
        check_conv_shape(tuple(input_shape[1:]))
        _build_chain(self.layers_, input_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.hidden)

    def call(self, x):
        return _call_chain(self.layers_, x)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "filters": self.filters,
                "activation": self.activation}


@keras.saving.register_keras_serializable(package="tfvae")
class ConvDecoderBody(keras.layers.Layer):
    """[N, D] -> Dense -> [N, H/4, W/4, 2F] -> two stride-2 transposed convs -> [N, H, W, F]."""

    def __init__(self, image_shape, hidden=256, filters=32, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)
        check_conv_shape(self.image_shape)
        check_int("hidden", hidden)
        check_int("filters", filters)
        self.hidden, self.filters, self.activation = hidden, filters, activation
        h, w = self.image_shape[0] // 4, self.image_shape[1] // 4
        self.layers_ = [
            keras.layers.Dense(hidden, activation=activation),
            keras.layers.Dense(h * w * 2 * filters, activation=activation),
            keras.layers.Reshape((h, w, 2 * filters)),
            keras.layers.Conv2DTranspose(2 * filters, 3, strides=2, padding="same",
                                         activation=activation),
            keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same",
                                         activation=activation),
        ]

    def build(self, input_shape):
        _build_chain(self.layers_, input_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.image_shape[:2], self.filters)

    def call(self, z):
        return _call_chain(self.layers_, z)

    def get_config(self):
        return {**super().get_config(), "image_shape": list(self.image_shape), "hidden": self.hidden,
                "filters": self.filters, "activation": self.activation}


def estimated_weights(architecture, image_shape, latent_dim, hidden, depth):
    """About how many weights a model of these settings has (its largest matrices: from the
    pixels to the first hidden layer and back, between hidden layers, and to and from z), counted
    before anything is built, so that a model too large for memory is refused, not attempted."""
    pixels = math.prod(image_shape)
    if architecture == "conv":  # two stride-2 convolutions of 32 and 64 filters
        flat = math.prod(image_shape[:2]) // 16 * 64
        return 2 * flat * hidden + 3 * latent_dim * hidden + 2 * 9 * 64 * (32 + pixels)
    return 3 * pixels * hidden + 2 * (depth - 1) * hidden * hidden + 3 * latent_dim * hidden


def check_model_size(architecture, image_shape, latent_dim, hidden, depth, names=None):
    """Refuse settings whose model would not fit in memory (``tfvae.checks.MAX_WEIGHTS``),
    naming the largest of them: ``names`` maps the model's argument names to the caller's (the
    CLI's flags). ``image_shape`` None counts the weights that do not depend on it."""
    known = image_shape is not None  # None: not known yet (before the data is read), one pixel
    image_shape = tuple(image_shape) if known else (1, 1, 1)
    weights = estimated_weights(architecture, image_shape, latent_dim, hidden, depth)
    sizes = {"image_shape": math.prod(image_shape), "latent_dim": latent_dim, "hidden": hidden,
             "depth": depth}
    names = {key: key for key in sizes} | (names or {})
    values = {"image_shape": image_shape, "latent_dim": latent_dim, "hidden": hidden,
              "depth": depth}
    largest = max(sizes, key=sizes.get)
    settings = ", ".join(f"{names[key]} {values[key]}" for key in sizes
                         if key != largest and (known or key != "image_shape"))
    check_weights(names[largest], values[largest], weights, settings)


def network_body(part, architecture, image_shape, hidden, depth, activation, kernel_initializer):
    """The body of the ``part`` ("encoder" or "decoder") network for ``architecture``."""
    check_choice("architecture", architecture, ARCHITECTURES)
    if architecture == "mlp":
        return MLP(hidden, depth, activation, kernel_initializer, name="body")
    if part == "encoder":
        return ConvEncoderBody(hidden, activation=activation, name="body")
    return ConvDecoderBody(image_shape, hidden, activation=activation, name="body")
