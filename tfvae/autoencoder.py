"""``tfvae.Autoencoder``: the plain autoencoder the paper starts from, a baseline to the VAE.

It has the VAE's bodies (``tfvae.networks``) and decoder head (``tfvae.distributions``) but a
deterministic code z = f(x) [B, D]. Training maximizes log p(x | z = f(x)) under the decoder head
(for a Bernoulli head, minus the binary cross-entropy summed over pixels). There is no prior and
no KL term, so nothing makes the codes fill N(0, I): decoding points drawn from N(0, I) need not
give images, which is the seed's reason to go from the autoencoder to the VAE.

In a run directory (``tfvae train --model autoencoder``) the metrics are ``reconstruction`` (mean
log p(x|f(x)) in nats) and ``loss``; the ``elbo`` and ``kl`` columns of metrics.csv stay empty,
``best.keras`` is the epoch with the best test reconstruction, and ``best_test_elbo`` in
state.json holds that reconstruction.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.distributions import likelihood_layer
from tfvae.errors import InputError
from tfvae.model import (Decoder, _check_int, _inputs, loss_to_differentiate, network_config,
                         network_kwargs, set_network_settings, weight_penalty)
from tfvae.networks import decoder_body, encoder_body

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="tfvae")
class CodeEncoder(keras.Model):
    """x [B, *E] -> the code z = f(x) [B, D]: a body, then one affine map."""

    def __init__(self, body, latent_dim, **kwargs):
        super().__init__(**kwargs)
        self.body = body
        self.code = keras.layers.Dense(latent_dim, name="code")

    def build(self, input_shape):
        self.body.build(input_shape)
        self.code.build(self.body.compute_output_shape(input_shape))

    def call(self, x):
        return tf.cast(self.code(self.body(x)), tf.float32)


@keras.saving.register_keras_serializable(package="tfvae")
class Autoencoder(keras.Model):
    """A deterministic autoencoder trained by the negative log-likelihood of its decoder head.

    Takes the VAE's model arguments, so ``tfvae train --model autoencoder`` works with the same
    flags; ``kl``, ``objective`` and ``num_samples`` are accepted only at their defaults, since
    there is no posterior to sample and no KL term.
    """

    # RunCheckpoint picks best.keras by this metric; the autoencoder has no ELBO.
    checkpoint_metric = "reconstruction"

    def __init__(self, image_shape=(28, 28, 1), latent_dim=20, hidden=500, depth=1,
                 activation="tanh", architecture="mlp", likelihood="bernoulli",
                 gaussian_scale="network", kernel_initializer="glorot_uniform", weight_decay=0.0,
                 seed=None, kl="analytic", objective="elbo", num_samples=1, **kwargs):
        super().__init__(**kwargs)
        for argument, value, default in (("kl", kl, "analytic"), ("objective", objective, "elbo"),
                                         ("num_samples", num_samples, 1)):
            if value != default:
                raise InputError(argument, f"{default!r} (an autoencoder has no posterior to "
                                 "sample and no KL term)", repr(value))
        set_network_settings(self, image_shape, latent_dim, hidden, depth, activation,
                             architecture, likelihood, gaussian_scale, kernel_initializer,
                             weight_decay, seed)
        image_shape = self.image_shape
        body_args = (architecture, image_shape, hidden, depth, activation, kernel_initializer)
        self.encoder = CodeEncoder(encoder_body(*body_args), latent_dim, name="encoder")
        self.decoder = Decoder(decoder_body(*body_args),
                               likelihood_layer(likelihood, image_shape, gaussian_scale),
                               name="decoder")
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.build((None, *image_shape))

    def build(self, input_shape):
        self.encoder.build(input_shape)
        self.decoder.build((None, self.latent_dim))
        self.built = True

    # -- the model ---------------------------------------------------------------------------

    def code(self, x):
        """The deterministic code f(x) [B, D]."""
        return self.encoder(tf.cast(x, tf.float32))

    def encode(self, x):
        """The code as a point mass (batch [B], event [D]), so it reads like the VAE's q(z|x):
        ``mean()`` is f(x) and ``stddev()`` is 0."""
        return tfd.Independent(tfd.Deterministic(loc=self.code(x)), reinterpreted_batch_ndims=1)

    def decode(self, z):
        """p(x|z), a ``tfd`` distribution with batch [*S] and event E, for z [*S, D]."""
        return self.decoder(z)

    def reconstruct(self, x):
        """The mean of p(x|z) at z = f(x): [B, *E]."""
        return self.decode(self.code(x)).mean()

    def sample(self, num, seed=None):
        """The mean of p(x|z) for ``num`` points z ~ N(0, I) of the code space: [num, *E].

        Nothing in training ties the codes to N(0, I), so these are decoded arbitrary points, the
        counterpart of ``VAE.sample`` for comparison.
        """
        _check_int("num", num)
        if seed is None:
            seed = tf.cast(self.seed_generator.next(), tf.int32)
        elif isinstance(seed, int):
            seed = tf.constant([seed, 0], tf.int32)
        z = tf.random.stateless_normal([num, self.latent_dim], seed=seed)
        return self.decode(z).mean()

    def call(self, x):
        return self.reconstruct(x)

    def log_likelihood(self, x):
        """log p(x | z = f(x)) per example [B], in nats."""
        x = tf.cast(x, tf.float32)
        return self.decode(self.code(x)).log_prob(x)

    # -- training ----------------------------------------------------------------------------

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker]

    def _update_metrics(self, loss, reconstruction):
        self.loss_tracker.update_state(loss)
        self.reconstruction_tracker.update_state(reconstruction)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x = _inputs(data)
        with tf.GradientTape() as tape:
            reconstruction = self.log_likelihood(x)
            loss = -tf.reduce_mean(reconstruction) + weight_penalty(self.weight_decay,
                                                                    self.trainable_variables)
            scaled_loss = loss_to_differentiate(self.optimizer, loss)
        grads = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return self._update_metrics(loss, reconstruction)

    def test_step(self, data):
        x = _inputs(data)
        reconstruction = self.log_likelihood(x)
        return self._update_metrics(-tf.reduce_mean(reconstruction), reconstruction)

    # -- serialization -----------------------------------------------------------------------

    def get_config(self):
        return {**super().get_config(), **network_config(self)}

    @classmethod
    def from_config(cls, config):
        return cls(**network_kwargs(config))
