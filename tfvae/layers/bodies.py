"""Network bodies: the layers between the data (or z) and a distribution head.

The paper's model is an MLP with one hidden layer of tanh units (appendix C); width, depth and
activation are options. The convolutional pair is for image data whose height and width divide
by 4. A body never ends in a distribution: the heads in ``tfvae.layers.likelihoods`` do.

The bodies are the members of ``BODIES`` (``architecture="mlp"``): a new one is a subclass of
:class:`Body` registered with ``@BODIES.register(name)`` and Keras's
``register_keras_serializable``. Its classmethods make the encoder's and the decoder's body from a
model's settings, refuse an image shape it cannot take and size a model before it is built, so
nothing elsewhere asks which architecture a model has.
"""

import math

import keras

from tfvae.checks import check_int, check_weights
from tfvae.errors import InputError, arg
from tfvae.layers.activations import activation_function
from tfvae.layers.registries import BODIES


def _build_chain(layers, shape):
    """Build ``layers`` one after another from ``shape``."""
    for layer in layers:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)


def _call_chain(layers, x):
    for layer in layers:
        x = layer(x)
    return x


class Body(keras.layers.Layer):
    """Base of the registered bodies: inputs [N, ...] -> hidden units [N, H] (or a feature map
    [N, *E[:-1], F] that the decoder's head maps pixel by pixel).

    The encoder's body takes images [N, *E]; a conditional model joins its one-hot labels [N, K]
    to them, as K constant channels for a ``spatial`` body, else after the flattened pixels
    [N, prod(E) + K] (so a flat body flattens what it is given). The decoder's body takes
    z [N, D (+ K)]. A body builds from ``build(input_shape)`` and answers
    ``compute_output_shape``.
    """

    # Whether the encoder's body reads images as [N, H, W, C] (labels joined as channels).
    spatial = False

    @classmethod
    def make(cls, part, image_shape, hidden, depth, activation, kernel_initializer):
        """The body of the ``part`` ("encoder" or "decoder") network of a model with these
        settings: by default this class for both, from ``hidden``, ``depth``, ``activation`` and
        ``kernel_initializer``."""
        return cls(hidden=hidden, depth=depth, activation=activation,
                   kernel_initializer=kernel_initializer, name="body")

    @classmethod
    def check_image_shape(cls, image_shape, argument):
        """Refuse an image shape [H, W, C] (or a size [H, W]) the body cannot take, as an
        ``InputError`` naming ``argument``: by default every shape is taken."""

    @classmethod
    def estimated_weights(cls, image_shape, latent_dim, hidden, depth):
        """About how many weights a model of these settings has (its largest matrices), counted
        before anything is built, so that a model too large for memory is refused, not attempted.
        By default a dense body's: from the pixels to the first hidden layer and back, between
        hidden layers, and to and from z."""
        pixels = math.prod(image_shape)
        return 3 * pixels * hidden + 2 * (depth - 1) * hidden * hidden + 3 * latent_dim * hidden


@keras.saving.register_keras_serializable(package="tfvae")
class MLP(Body):
    """[N, ...] -> flatten -> ``depth`` Dense layers of ``hidden`` units -> [N, hidden]."""

    def __init__(self, hidden=500, depth=1, activation="tanh", kernel_initializer="glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        check_int("hidden", hidden)
        check_int("depth", depth)
        self.hidden, self.depth, self.activation = hidden, depth, activation
        self.kernel_initializer = kernel_initializer
        self.flatten = keras.layers.Flatten()
        function = activation_function(activation)
        self.layers_ = [
            keras.layers.Dense(hidden, activation=function, kernel_initializer=kernel_initializer,
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


@keras.saving.register_keras_serializable(package="tfvae")
class ConvEncoderBody(Body):
    """[N, H, W, C] -> two stride-2 convolutions -> Dense(hidden) -> [N, hidden].

    The member ``"conv"`` of ``BODIES``: its decoder's body is a :class:`ConvDecoderBody`.
    """

    spatial = True

    @classmethod
    def make(cls, part, image_shape, hidden, depth, activation, kernel_initializer):
        if part == "encoder":
            return cls(hidden, activation=activation, name="body")
        return ConvDecoderBody(image_shape, hidden, activation=activation, name="body")

    @classmethod
    def check_image_shape(cls, image_shape, argument="architecture 'conv'"):
        # Two stride-2 layers halve H and W twice.
        if len(image_shape) not in (2, 3) or image_shape[0] % 4 or image_shape[1] % 4:
            expected = (f"H and W divisible by 4 for {arg('architecture', 'conv')}"
                        if len(image_shape) == 2
                        else "an image shape [H, W, C] with H and W divisible by 4")
            raise InputError(argument, expected, list(image_shape))

    @classmethod
    def estimated_weights(cls, image_shape, latent_dim, hidden, depth):
        # Two stride-2 convolutions of 32 and 64 filters, then dense layers.
        flat = math.prod(image_shape[:2]) // 16 * 64
        return (2 * flat * hidden + 3 * latent_dim * hidden
                + 2 * 9 * 64 * (32 + math.prod(image_shape)))

    def __init__(self, hidden=256, filters=32, activation="relu", **kwargs):
        super().__init__(**kwargs)
        check_int("hidden", hidden)
        check_int("filters", filters)
        self.hidden, self.filters, self.activation = hidden, filters, activation
        function = activation_function(activation)
        self.layers_ = [
            keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation=function),
            keras.layers.Conv2D(2 * filters, 3, strides=2, padding="same", activation=function),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation=function),
        ]

    def build(self, input_shape):
        self.check_image_shape(tuple(input_shape[1:]))
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
        ConvEncoderBody.check_image_shape(self.image_shape)
        check_int("hidden", hidden)
        check_int("filters", filters)
        self.hidden, self.filters, self.activation = hidden, filters, activation
        h, w = self.image_shape[0] // 4, self.image_shape[1] // 4
        function = activation_function(activation)
        self.layers_ = [
            keras.layers.Dense(hidden, activation=function),
            keras.layers.Dense(h * w * 2 * filters, activation=function),
            keras.layers.Reshape((h, w, 2 * filters)),
            keras.layers.Conv2DTranspose(2 * filters, 3, strides=2, padding="same",
                                         activation=function),
            keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same",
                                         activation=function),
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


def check_model_size(architecture, image_shape, latent_dim, hidden, depth, names=None):
    """Refuse settings whose model would not fit in memory (``tfvae.checks.MAX_WEIGHTS``),
    naming the largest of them: ``names`` maps the model's argument names to the caller's (the
    CLI's flags). ``image_shape`` None counts the weights that do not depend on it."""
    known = image_shape is not None  # None: not known yet (before the data is read), one pixel
    image_shape = tuple(image_shape) if known else (1, 1, 1)
    body = BODIES.get(architecture, (names or {}).get("architecture", "architecture"))
    weights = body.estimated_weights(image_shape, latent_dim, hidden, depth)
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
    """The body of the ``part`` ("encoder" or "decoder") network of the member ``architecture``."""
    return BODIES.get(architecture, "architecture").make(part, image_shape, hidden, depth,
                                                         activation, kernel_initializer)
