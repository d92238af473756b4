"""``tfvae.VAE``: the recognition model q(z|x) and generative model p(x|z)p(z) as one Keras model.

Shapes: ``B`` batch, ``S`` samples per datapoint (the paper's L), ``D`` latent dimension, ``E``
image shape [H, W, C].
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import noise, objectives
from tfvae.distributions import LIKELIHOODS, DiagonalGaussian, likelihood_layer
from tfvae.errors import InputError
from tfvae.networks import ARCHITECTURES, decoder_body, encoder_body

tfd = tfp.distributions

OBJECTIVES = ("elbo", "iwae")
_SEED_STATE = "seed_generator_state"


@keras.saving.register_keras_serializable(package="tfvae")
class Encoder(keras.Model):
    """x [B, *E] -> q(z|x), a diagonal Gaussian with batch [B] and event [D]."""

    def __init__(self, body, latent_dim, **kwargs):
        super().__init__(**kwargs)
        self.body = body
        self.posterior = DiagonalGaussian(latent_dim, name="posterior")

    def build(self, input_shape):
        self.body.build(input_shape)
        self.posterior.build(self.body.compute_output_shape(input_shape))

    def call(self, x):
        return self.posterior(self.body(x))


@keras.saving.register_keras_serializable(package="tfvae")
class Decoder(keras.Model):
    """z [*S, D] -> p(x|z) with batch [*S] and event E; leading sample dims are kept."""

    def __init__(self, body, likelihood, **kwargs):
        super().__init__(**kwargs)
        self.body = body
        self.likelihood = likelihood

    def build(self, input_shape):
        self.body.build(input_shape)
        self.likelihood.build(self.body.compute_output_shape(input_shape))

    def call(self, z):
        # Bodies (convolutions in particular) take one batch dimension: flatten, then restore.
        batch_shape = tf.shape(z)[:-1]
        h = self.body(tf.reshape(z, [-1, z.shape[-1]]))
        return self.likelihood(h, batch_shape=batch_shape)


def _check_choice(argument, value, choices):
    if value not in choices:
        raise InputError(argument, f"one of {choices}", repr(value))


def _check_int(argument, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(argument, f"an integer >= {minimum}", repr(value))


@keras.saving.register_keras_serializable(package="tfvae")
class VAE(keras.Model):
    """Auto-Encoding Variational Bayes (Kingma & Welling, 2013).

    Trained with ``fit`` on batches of images x [B, *E]; each step maximizes the mean per-example
    bound over the batch:

    - ``objective="elbo"``, ``kl="analytic"``: SGVB estimator B (the default),
      E_q[log p(x|z)] - KL(q(z|x) || p(z)) with ``num_samples`` (L) draws of z.
    - ``objective="elbo"``, ``kl="sampled"``: SGVB estimator A, E_q[log p(x, z) - log q(z|x)].
    - ``objective="iwae"``: the importance-weighted bound with ``num_samples`` = k.

    Metrics are per example, in nats: ``elbo``, ``reconstruction`` (E_q log p(x|z)) and ``kl``;
    z is sampled in ``test_step`` too, so the test ``elbo`` is the stochastic bound itself.

    Set ``dynamic_binarization = True`` to train on grey levels in [0, 1] with a fresh Bernoulli
    sample of every pixel at each step, drawn on the device inside ``train_step`` (``tfvae
    train`` does so for ``--binarize dynamic``); set it before the first ``fit``, which traces
    the step. Each example's noise (binarization and z) comes
    from the step's seed and the example's place in the global batch (``tfvae.noise``), so
    training under ``tf.distribute`` computes what one device computes with the same global batch.
    """

    dynamic_binarization = False

    def __init__(self, image_shape=(28, 28, 1), latent_dim=20, hidden=500, depth=1,
                 activation="tanh", architecture="mlp", likelihood="bernoulli",
                 gaussian_scale="network", kl="analytic", objective="elbo", num_samples=1,
                 kernel_initializer="glorot_uniform", weight_decay=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        set_network_settings(self, image_shape, latent_dim, hidden, depth, activation,
                             architecture, likelihood, gaussian_scale, kernel_initializer,
                             weight_decay, seed)
        _check_int("num_samples", num_samples)
        _check_choice("kl", kl, objectives.KL_ESTIMATORS)
        _check_choice("objective", objective, OBJECTIVES)
        self.kl, self.objective, self.num_samples = kl, objective, num_samples
        image_shape = self.image_shape
        body_args = (architecture, image_shape, hidden, depth, activation, kernel_initializer)
        self.encoder = Encoder(encoder_body(*body_args), latent_dim, name="encoder")
        self.decoder = Decoder(
            decoder_body(*body_args),
            likelihood_layer(likelihood, image_shape, gaussian_scale),
            name="decoder",
        )
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.elbo_tracker = keras.metrics.Mean(name="elbo")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.build((None, *image_shape))

    # -- the model ---------------------------------------------------------------------------

    def build(self, input_shape):
        self.encoder.build(input_shape)
        self.decoder.build((None, self.latent_dim))
        self.built = True

    @property
    def prior(self):
        """p(z) = N(0, I)."""
        return tfd.MultivariateNormalDiag(loc=tf.zeros([self.latent_dim]))

    def encode(self, x):
        """q(z|x), a ``tfd`` distribution with batch [B] and event [D]."""
        return self.encoder(x)

    def decode(self, z):
        """p(x|z), a ``tfd`` distribution with batch [*S] and event E, for z [*S, D]."""
        return self.decoder(z)

    def reconstruct(self, x):
        """The mean of p(x|z) at z = the mean of q(z|x): [B, *E]."""
        return self.decode(self.encode(x).mean()).mean()

    def sample(self, num, seed=None):
        """``num`` images [num, *E]: the mean of p(x|z) for z ~ p(z); ``seed`` makes it repeatable."""
        _check_int("num", num)
        seed = self._seed(seed)
        z = self.prior.sample(num, seed=seed)
        return self.decode(z).mean()

    def call(self, x):
        return self.reconstruct(x)

    def _seed(self, seed=None):
        """A stateless int32 seed [2]: from ``seed`` when given, else the model's generator.

        Every replica advances its copy of the generator alike, so all replicas get the same seed;
        ``tfvae.noise`` keeps their examples' noise apart.
        """
        if seed is None:
            return tf.cast(self.seed_generator.next(), tf.int32)
        if isinstance(seed, int):
            return tf.constant([seed, 0], tf.int32)
        return tf.cast(seed, tf.int32)

    # -- objectives --------------------------------------------------------------------------

    def bound_terms(self, x, seed=None):
        """Per-example ``bound`` (what training maximizes), ``elbo``, ``reconstruction``, ``kl``."""
        x = tf.cast(x, tf.float32)
        return self._bound_terms(x, self._seed(seed), noise.batch_layout(tf.shape(x)[0]))

    def _bound_terms(self, x, seed, layout):
        q = self.encode(x)
        if self.objective == "iwae":
            terms = objectives.iwae_terms(q, self.decode, self.prior, x,
                                          num_samples=self.num_samples, seed=seed, layout=layout)
            terms["bound"] = terms.pop("iwae")
        else:
            terms = objectives.elbo_terms(q, self.decode, self.prior, x, kl=self.kl,
                                          num_samples=self.num_samples, seed=seed, layout=layout)
            terms["bound"] = terms["elbo"]
        return terms

    def elbo(self, x, seed=None):
        """The per-example ELBO [B] by this model's estimator."""
        return self.bound_terms(x, seed)["elbo"]

    def _weight_penalty(self):
        return weight_penalty(self.weight_decay, self.trainable_variables)

    # -- training ----------------------------------------------------------------------------

    @property
    def metrics(self):
        return [self.loss_tracker, self.elbo_tracker, self.reconstruction_tracker, self.kl_tracker]

    def _update_metrics(self, loss, terms):
        # Weighted by the batch size, as the per-example trackers are: the epoch's loss is then the
        # mean over examples, whatever the batch sizes and however batches are split on replicas.
        self.loss_tracker.update_state(loss, sample_weight=tf.cast(tf.shape(terms["elbo"])[0],
                                                                   loss.dtype))
        self.elbo_tracker.update_state(terms["elbo"])
        self.reconstruction_tracker.update_state(terms["reconstruction"])
        self.kl_tracker.update_state(terms["kl"])
        logs = {m.name: m.result() for m in self.metrics}
        if _multi_worker():
            # Keras 3 reduces per-step logs across workers with strategy.reduce(MEAN, axis=0),
            # which fails on scalars (tensorflow/tensorflow#72388): give them a batch axis. Epoch
            # logs are read from the metrics themselves, aggregated over all workers.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def train_step(self, data):
        x = tf.cast(_inputs(data), tf.float32)
        layout = noise.batch_layout(tf.shape(x)[0])
        seed = self._seed()
        if self.dynamic_binarization:
            binarize_seed, seed = tf.unstack(noise.split(seed))
            x = noise.bernoulli(x, binarize_seed, layout)
        with tf.GradientTape() as tape:
            terms = self._bound_terms(x, seed, layout)
            loss = -tf.reduce_mean(terms["bound"]) + self._weight_penalty()
            scaled_loss = loss_to_differentiate(self.optimizer, loss)
        grads = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return self._update_metrics(loss, terms)

    def test_step(self, data):
        x = _inputs(data)
        terms = self.bound_terms(x)
        return self._update_metrics(-tf.reduce_mean(terms["bound"]), terms)

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
        return {**super().get_config(), **network_config(self), "kl": self.kl,
                "objective": self.objective, "num_samples": self.num_samples}

    @classmethod
    def from_config(cls, config):
        return cls(**network_kwargs(config))


def weight_penalty(weight_decay, variables):
    """A N(0, 1/weight_decay) prior on the weights: MAP adds weight_decay/2 * ||w||^2."""
    if not weight_decay:
        return 0.0
    return 0.5 * weight_decay * tf.add_n([tf.reduce_sum(tf.square(v)) for v in variables])


def loss_to_differentiate(optimizer, loss):
    """What a hand-written ``train_step`` differentiates for a replica's mean ``loss``.

    fit() under tf.distribute sums the replicas' gradients: each replica's mean loss is scaled by
    1/replicas so the sum is the global mean. ``scale_loss`` is the identity unless the optimizer
    is a LossScaleOptimizer (mixed precision), whose ``apply`` unscales the gradients.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return optimizer.scale_loss(loss / replicas)


def set_network_settings(model, image_shape, latent_dim, hidden, depth, activation, architecture,
                         likelihood, gaussian_scale, kernel_initializer, weight_decay, seed):
    """Check the network settings every tfvae model shares and keep them on ``model``."""
    _check_int("latent_dim", latent_dim)
    _check_choice("architecture", architecture, ARCHITECTURES)
    _check_choice("likelihood", likelihood, LIKELIHOODS)
    image_shape = tuple(image_shape)
    if not image_shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1
                              for d in image_shape):
        raise InputError("image_shape", "a tuple of positive integers such as (28, 28, 1)",
                         repr(image_shape))
    if weight_decay < 0:
        raise InputError("weight_decay", "a number >= 0", repr(weight_decay))
    model.image_shape = image_shape
    model.latent_dim = latent_dim
    model.hidden, model.depth, model.activation = hidden, depth, activation
    model.architecture = architecture
    model.likelihood_name = likelihood
    model.gaussian_scale = gaussian_scale
    model.kernel_initializer = kernel_initializer
    model.weight_decay = float(weight_decay)
    model.seed = seed


def network_config(model):
    """The network settings every tfvae model shares, as its ``get_config`` records them."""
    return {
        "image_shape": list(model.image_shape),
        "latent_dim": model.latent_dim,
        "hidden": model.hidden,
        "depth": model.depth,
        "activation": model.activation,
        "architecture": model.architecture,
        "likelihood": model.likelihood_name,
        "gaussian_scale": model.gaussian_scale,
        "kernel_initializer": keras.initializers.serialize(
            keras.initializers.get(model.kernel_initializer)),
        "weight_decay": model.weight_decay,
        "seed": model.seed,
    }


def network_kwargs(config):
    """A config from ``get_config`` as constructor arguments (the initializer deserialized)."""
    config = dict(config)
    config["kernel_initializer"] = keras.initializers.deserialize(config["kernel_initializer"])
    return config


def _multi_worker():
    strategy = tf.distribute.get_strategy()
    # The same test Keras's trainer makes before its cross-worker reduction.
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


def _inputs(data):
    """fit() passes x alone or (x, y[, sample_weight]); the VAE only needs x."""
    return data[0] if isinstance(data, (tuple, list)) else data
