"""The one base class of tfvae's latent-variable models.

A model is a prior p(z), a decoder p(x|z) and, for most, a recognition model q(z|x). The base
class declares the settings they share once (the image shape, the networks, the likelihood, the
weight prior and the seed), checks them, records them in ``get_config`` and gives every model
the same ``prior``, ``decode``, ``sample`` and stateless seeds, and (``tfvae.models.steps``) the
same metrics and gradient step. A model adds its encoder (:meth:`make_encoder`), its metrics
(``metric_names``) and its ``train_step``.

Shapes: ``B`` batch, ``S`` samples per datapoint, ``D`` latent dimension, ``E`` image shape.
"""

import math
import numbers

import keras
import numpy as np
import tensorflow as tf

from tfvae import estimators, noise, options
from tfvae.checks import (MAX_SEED, check_bool, check_count, check_image_shape, check_int,
                          check_known, check_labels, check_number, check_seed, is_integer)
from tfvae.data.graph_checks import checked_model_data, flat_images
from tfvae.data.validation import model_images, model_latents
from tfvae.errors import InputError
from tfvae.layers import missing
from tfvae.layers.activations import activation_function
from tfvae.layers.coders import Decoder, Encoder
from tfvae.layers.diagonal_normal import DiagonalNormal
from tfvae.layers.likelihoods import likelihood_layer
from tfvae.layers.bodies import check_model_size, network_body
from tfvae.layers.registries import BODIES, LIKELIHOODS
from tfvae.layers.standardize import check_feature_statistics, standardized
from tfvae.models.steps import TrainingStep

_SEED_STATE = "seed_generator_state"
_NET = options.NETWORK_DEFAULTS


class LatentVariableModel(TrainingStep, keras.Model):
    """p(z) p(x|z), and q(z|x) when the model has an encoder, as one Keras model.

    Subclasses set ``metric_names`` (the per-example metrics their steps report, ``loss``
    first), may return an encoder from :meth:`make_encoder` and override :attr:`prior`, and
    write ``train_step``; the rest is shared. ``has_bound`` is False for a model without a
    lower bound on log p(x) (the autoencoder): no ``log_likelihood`` for it.

    The settings: ``image_shape`` [H, W, C] of images or [D] of vectors; ``latent_dim`` D; the
    bodies (``architecture`` "mlp" or "conv", ``hidden`` units, ``depth`` layers,
    ``activation``, ``kernel_initializer``); ``likelihood`` p(x|z), a name in
    ``tfvae.layers.registries.LIKELIHOODS``: "bernoulli" (logits; binary or grey-level pixels),
    "gaussian" (mean through a sigmoid as in the paper) or "normal" (unbounded mean), both with
    ``gaussian_scale`` "network", "learned" or a fixed float, "poisson" or "negative_binomial"
    (counts), "discretized_logistic" (8-bit pixels k/255, a mixture of
    ``logistic_components`` logistics per value); ``weight_decay``, a N(0, 1/weight_decay)
    prior on the weights (MAP); ``seed`` of the model's noise; ``num_classes`` K > 0 makes the model
    conditional (Sohn et al., 2015): q(z|x, y) and p(x|z, y) take a class label y in [0, K),
    as a one-hot vector joined to the inputs of both bodies, and every method that takes images
    or latents takes ``labels`` too (``fit`` on (x, y)). ``allow_missing``: NaN in x is a
    missing value, left out of p(x|z) (``tfvae.layers.missing``), not a data error.

    A body or likelihood of one's own is a registered ``tfvae.layers.bodies.Body`` or
    ``tfvae.layers.likelihoods.Likelihood``, given by name (``docs/extending.md``).
    """

    metric_names = ("loss",)
    # The test metric that picks a run's best.keras.
    checkpoint_metric = "elbo"
    has_bound = True
    # Trained on (x, index) batches, keeping state per training example (MCEM's chains).
    needs_example_index = False
    # Settings a subclass inherits but holds at one value: {name: (value, why)}
    # (tfvae.models.settings).
    fixed_settings = {}
    # Whether train_step uses the labels of (x, y) batches, so the model may be conditional.
    takes_labels = False

    def __init__(self, image_shape=options.DEFAULT_IMAGE_SHAPE, latent_dim=_NET["latent_dim"],
                 hidden=_NET["hidden"], depth=_NET["depth"], activation=_NET["activation"],
                 architecture=_NET["architecture"], likelihood=_NET["likelihood"],
                 gaussian_scale=_NET["gaussian_scale"],
                 logistic_components=_NET["logistic_components"],
                 kernel_initializer=_NET["kernel_initializer"],
                 weight_decay=_NET["weight_decay"], seed=None, num_classes=0, feature_mean=None,
                 feature_scale=None, columns=None, allow_missing=False, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = check_image_shape("image_shape", image_shape)
        self.latent_dim = check_int("latent_dim", latent_dim)
        self.hidden = check_int("hidden", hidden)
        self.depth = check_int("depth", depth)
        self.activation = check_known("activation", activation, activation_function)
        BODIES.get(architecture, "architecture").check_image_shape(
            self.image_shape, f"architecture {architecture!r}")
        self.architecture = architecture
        check_model_size(self.architecture, self.image_shape, self.sized_latent_dim, self.hidden,
                         self.depth)
        LIKELIHOODS.get(likelihood, "likelihood")  # an unknown name is refused before building
        self.likelihood_name = likelihood
        self.gaussian_scale = gaussian_scale
        self.logistic_components = check_int("logistic_components", logistic_components)
        self.feature_mean, self.feature_scale = check_feature_statistics(
            feature_mean, feature_scale, self.image_shape)
        # A table's columns ({"name", "type", "categories"} each), for heads that model each
        # column by its type.
        self.columns = None if columns is None else [dict(column) for column in columns]
        self.allow_missing = check_bool("allow_missing", allow_missing)
        self.kernel_initializer = check_known("kernel_initializer", kernel_initializer,
                                               keras.initializers.get)
        self.weight_decay = check_number("weight_decay", weight_decay, at_least=0)
        self.seed = check_seed("seed", seed, optional=True)
        self.num_classes = check_int("num_classes", num_classes, minimum=0)
        if self.num_classes and not self.takes_labels:
            raise InputError("num_classes", f"0 for {type(self).__name__}, which does not train "
                             "on labels (a conditional model is a VAE)", repr(num_classes))
        if self.num_classes == 1:
            raise InputError("num_classes", "0 (unconditional) or at least 2 classes",
                             repr(num_classes))
        # Encoder before decoder: the order of trainable_variables, which optimizer slots and
        # the paper's initialization follow.
        encoder = self.make_encoder()
        if encoder is not None:
            self.encoder = encoder
        self.decoder = self.make_decoder()
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="seed_generator")
        self.trackers = [keras.metrics.Mean(name=name) for name in self.metric_names]
        self.init_training_step()
        self.build((None, *self.image_shape))

    @property
    def sized_latent_dim(self):
        """The latent size the networks' weights grow with, which ``check_model_size`` counts:
        ``latent_dim`` (a subclass whose networks read z by convolutions says less)."""
        return self.latent_dim

    def network_body(self, part):
        """The body of the ``part`` ("encoder" or "decoder") network, from the settings."""
        return network_body(part, self.architecture, self.image_shape, self.hidden, self.depth,
                            self.activation, self.kernel_initializer)

    @property
    def has_encoder(self):
        return hasattr(self, "encoder")

    def make_encoder(self):
        """The recognition model x -> q(z|x) (a diagonal Gaussian), or None for a model with a
        decoder only."""
        return Encoder(self.network_body("encoder"), self.latent_dim, self.num_classes,
                       name="encoder")

    def make_decoder(self, reads=None):
        """The generative model z -> p(x|z) (p(x|z1) reading ``reads`` dimensions of z)."""
        return Decoder(self.network_body("decoder"),
                       likelihood_layer(self.likelihood_name, self.image_shape,
                                        gaussian_scale=self.gaussian_scale,
                                        logistic_components=self.logistic_components,
                                        feature_mean=self.feature_mean,
                                        feature_scale=self.feature_scale,
                                        columns=self.columns),
                       num_classes=self.num_classes, reads=reads, name="decoder")

    def build(self, input_shape):
        if self.has_encoder:
            self.encoder.build(input_shape)
        self.decoder.build((None, self.latent_dim))
        self.built = True

    # -- inputs ------------------------------------------------------------------------------

    @property
    def unit_interval(self):
        """Whether p(x|z) takes pixel values in [0, 1] only (a Bernoulli's): the input checks
        refuse others."""
        return self.decoder.likelihood.unit_interval

    def images(self, x, argument="x"):
        """``x`` as a float32 batch of this model's images [B, *E].

        Arrays are checked as ``tfvae.data.model_images`` checks them (any shape whose examples
        hold the model's pixels; grey levels 0..255 scaled; NaN, infinities and, for a Bernoulli
        model, values outside [0, 1] refused). Tensors are only reshaped, when their examples
        hold the model's pixels: inside a training step there is nothing more to check.
        """
        if not tf.is_tensor(x):
            return tf.constant(model_images(self, x, argument))
        x = tf.cast(x, tf.float32)
        if flat_images(x.shape, self.image_shape, argument):
            return tf.reshape(x, [-1, *self.image_shape])
        return x

    @property
    def conditional(self):
        return self.num_classes > 0

    def label_codes(self, labels, count=None, argument="labels"):
        """One-hot labels [B, K] for a conditional model, None for an unconditional one.

        A conditional model needs ``labels`` (an integer, copied ``count`` times, or one per
        example); an unconditional one refuses them. Arrays are checked; tensors are a graph's
        own, checked where they enter it (``tfvae.data.graph_checks.check_labels``).
        """
        if not self.conditional:
            if labels is not None:
                raise InputError(argument, "no labels for an unconditional model "
                                 "(num_classes=0)", f"{np.size(labels)} label(s)")
            return None
        if labels is None:
            raise InputError(argument, f"a class label from 0 to {self.num_classes - 1} per "
                             f"example for a conditional model (num_classes={self.num_classes})",
                             "none")
        if not tf.is_tensor(labels):
            labels = check_labels(argument, labels, self.num_classes, count)
        return tf.one_hot(tf.cast(labels, tf.int32), self.num_classes)

    def _checked_data(self, data, y=None, argument="x"):
        """What ``fit``, ``evaluate`` and ``predict`` take, checked before any step
        (:func:`tfvae.data.graph_checks.checked_model_data`)."""
        return checked_model_data(self, data, y, argument)

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        if isinstance(validation_data, tuple):
            validation_data = (self._checked_data(*validation_data[:2],
                                                  argument="validation_data"),
                               *validation_data[1:])
        elif validation_data is not None:
            validation_data = self._checked_data(validation_data, argument="validation_data")
        return super().fit(self._checked_data(x, y), y, *args, validation_data=validation_data,
                           **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        return super().evaluate(self._checked_data(x, y), y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """Reconstructions of ``x``: images, or (images, labels) for a conditional model."""
        if self.conditional and isinstance(x, tuple) and len(x) == 2:
            return super().predict((self._checked_data(*x), x[1]), *args, **kwargs)
        return super().predict(self._checked_data(x), *args, **kwargs)

    # -- the model ---------------------------------------------------------------------------

    @property
    def prior(self):
        """p(z) = N(0, I), event [D]. Override to give a model another prior."""
        return DiagonalNormal(loc=tf.zeros([self.latent_dim]))

    def encode(self, x, labels=None):
        """q(z|x), a ``tfd`` distribution with batch [B] and event [D] (q(z|x, y) given the
        ``labels`` [B] of a conditional model)."""
        if not self.has_encoder:
            raise InputError("model", "a model with an encoder q(z|x)",
                             f"a {type(self).__name__}, which has none")
        x = self.images(x)
        return self.encoder(self.encoder_input(x),
                            condition=self.label_codes(labels, x.shape[0]))

    def encoder_input(self, x):
        """What the encoder reads of a batch ``x``: its features standardized when the model has
        their statistics, a missing value as 0 (the training mean, once standardized)."""
        x = standardized(x, self.feature_mean, self.feature_scale)
        return missing.filled(x) if self.allow_missing else x

    def decode(self, z, labels=None):
        """p(x|z), a ``tfd`` distribution with batch [*S] and event E, for z [*S, D] (p(x|z, y)
        given the ``labels`` [B] of a conditional model, B the last of the leading dims)."""
        if z is None or isinstance(z, (np.ndarray, np.generic, list, tuple, str, bytes, dict,
                                       numbers.Number)):
            z = model_latents(self, z)
        shape = tf.TensorShape(np.shape(z) if not tf.is_tensor(z) else z.shape)
        if shape.rank == 0 or (shape.rank and shape[-1] not in (None, self.latent_dim)):
            raise InputError("z", f"latents [..., {self.latent_dim}] (the model's latent_dim)",
                             f"shape {tuple(shape)}")
        count = shape[-2] if shape.rank and shape.rank >= 2 else None
        p_x = self.decoder(z, condition=self.label_codes(labels, count))
        return missing.ObservedPart(p_x) if self.allow_missing else p_x

    def log_weights(self, x, num_samples, seed, labels=None, layout=None):
        """log p(x|z) and log p(z) - log q(z|x) [S, B] for S = ``num_samples`` draws of
        z ~ q(z|x) from the stateless ``seed`` (given the ``labels`` of a conditional model):
        the parts of the importance weights, ``tfvae.estimators.log_weights`` of this model."""
        x = self.images(x)
        return estimators.log_weights(self.encode(x, labels), lambda z: self.decode(z, labels),
                                      self.prior, x, num_samples, seed, layout)

    def decode_from(self, distribution, z, labels=None):
        """p(x|z) for z [B, D] that ``distribution`` (the prior, or q(z|x)) drew or gave as its
        mean: :meth:`decode`, which a hierarchy of latent groups overrides to read the features
        that the pass making z ended in."""
        return self.decode(z, labels)

    def reconstruct(self, x, labels=None):
        """The mean of p(x|z) at z = the mean of q(z|x): [B, *E]."""
        q = self.encode(x, labels)
        return self.decode_from(q, q.mean(), labels).mean()

    def sample(self, num, seed=None, labels=None, temperature=1.0):
        """``num`` images [num, *E]: the mean of p(x|z) for z ~ p(z) (:meth:`prior_draws`, at
        ``temperature``); ``seed`` makes it repeatable. A conditional model takes ``labels``:
        one class for all, or one per image."""
        num = check_count("num", num, math.prod(self.image_shape), what="images")
        prior = self.prior
        return self.decode_from(prior, self.prior_draws(num, seed, temperature, prior),
                                labels).mean()

    def prior_draws(self, num, seed=None, temperature=1.0, prior=None):
        """z [num, D] ~ p(z), made from standard normal noise times ``temperature`` (and uniform
        noise that picks a mixture prior's component). At 1, draws of p(z) itself; below 1,
        draws nearer its modes, each latent group's scale shrunk in a hierarchy (the reduced
        temperatures NVAE and VDVAE show their samples at); at 0, no noise. One ``seed`` gives
        the same noise at every temperature. ``prior``: ``self.prior``, built by the caller."""
        num = check_count("num", num, self.latent_dim, what="draws")
        temperature = check_number("temperature", temperature, at_least=0)
        normal_seed, uniform_seed = tf.unstack(
            tf.random.experimental.stateless_split(self._seed(seed), 2))
        eps = tf.random.stateless_normal([num, self.latent_dim], normal_seed)
        u = tf.random.stateless_uniform([num], uniform_seed)
        # Built once: a hierarchy's is a distribution over its whole pass.
        prior = self.prior if prior is None else prior
        z = estimators.draw_from_noise(prior, temperature * eps, u)
        if z is None:  # a prior of another family (a subclass's): its own sampler
            if temperature != 1:
                raise InputError("temperature", f"1 for a prior {type(prior).__name__} (it is "
                                 "not drawn from standard normal noise)", repr(temperature))
            z = prior.sample(num, seed=normal_seed)
        return z

    def call(self, x, labels=None):
        return self.reconstruct(x, labels)

    def predict_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        if not self.conditional:
            return self(x)
        if y is None and isinstance(x, (tuple, list)) and len(x) == 2:  # predict((x, y))
            x, y = x
        return self(x, labels=y)

    def _seed(self, seed=None):
        """A stateless int32 seed [2]: from ``seed`` when given, else the model's generator.

        Every replica advances its copy of the generator alike, so all replicas get the same seed;
        ``tfvae.noise`` keeps their examples' noise apart.
        """
        if seed is None:
            return tf.cast(self.seed_generator.next(), tf.int32)
        if isinstance(seed, noise.CounterSeed):  # an export's per-example seeds
            return seed
        if is_integer(seed):
            seed = check_seed("seed", seed)
            return tf.constant([seed % 2 ** 31, seed // 2 ** 31], tf.int32)
        if not (tf.is_tensor(seed) or isinstance(seed, (np.ndarray, list, tuple))):
            raise InputError("seed", f"an integer from 0 to {MAX_SEED} (or a stateless seed "
                             "pair)", repr(seed))
        return tf.cast(seed, tf.int32)  # a stateless seed pair [2]

    # -- serialization -----------------------------------------------------------------------

    def save_own_variables(self, store):
        super().save_own_variables(store)
        # Keras does not save a SeedGenerator's state; without it a resumed run would replay the
        # noise of the run's first steps instead of continuing where it stopped.
        store[_SEED_STATE] = self.seed_generator.state

    def load_own_variables(self, store):
        keys = list(store.keys())
        if _SEED_STATE in keys:  # absent from models saved before it was kept
            self.seed_generator.state.assign(store[_SEED_STATE])
        super().load_own_variables({k: store[k] for k in keys if k != _SEED_STATE})

    def get_config(self):
        return {
            **super().get_config(),
            "image_shape": list(self.image_shape),
            "latent_dim": self.latent_dim,
            "hidden": self.hidden,
            "depth": self.depth,
            "activation": self.activation,
            "architecture": self.architecture,
            "likelihood": self.likelihood_name,
            "gaussian_scale": self.gaussian_scale,
            "logistic_components": self.logistic_components,
            "kernel_initializer": keras.initializers.serialize(
                keras.initializers.get(self.kernel_initializer)),
            "weight_decay": self.weight_decay,
            "seed": self.seed,
            "num_classes": self.num_classes,
            "feature_mean": self.feature_mean,
            "feature_scale": self.feature_scale,
            "columns": self.columns,
            "allow_missing": self.allow_missing,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["kernel_initializer"] = keras.initializers.deserialize(config["kernel_initializer"])
        return cls(**config)

