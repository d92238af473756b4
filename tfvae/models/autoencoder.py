"""``tfvae.Autoencoder``: the plain autoencoder the paper starts from, a baseline to the VAE.

It has the VAE's bodies and decoder head (``tfvae.layers.bodies``, ``.distributions``) but a
deterministic code z = f(x) [B, D]. Training maximizes log p(x | z = f(x)) under the decoder head
(for a Bernoulli head, minus the binary cross-entropy summed over pixels). There is no KL term,
so nothing makes the codes fill N(0, I): decoding points drawn from N(0, I) need not give
images, which is the reason to go from the autoencoder to the VAE.

In a run directory (``tfvae train --model autoencoder``) the metrics are ``reconstruction`` (mean
log p(x|f(x)) in nats) and ``loss``; the ``elbo`` and ``kl`` columns of metrics.csv stay empty,
``best.keras`` is the epoch with the best test reconstruction, and ``best_test_elbo`` in
state.json holds that reconstruction.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import options
from tfvae.models.base import LatentVariableModel
from tfvae.models.registry import register
from tfvae.models.settings import check_fixed_settings

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


@register("autoencoder")
class Autoencoder(LatentVariableModel):
    """A deterministic autoencoder trained by the negative log-likelihood of its decoder head.

    Takes the network settings of every model; it holds the VAE's ``kl``, ``objective`` and
    ``num_samples`` at their defaults (``fixed_settings``), since there is no posterior to sample
    and no KL term. Its ``prior`` N(0, I) is only where
    ``sample`` draws codes from: nothing in training ties the codes to it, and there is no
    bound on log p(x) (``has_bound`` is False).
    """

    metric_names = ("loss", "reconstruction")
    checkpoint_metric = "reconstruction"
    has_bound = False

    # The VAE's objective settings, which an autoencoder holds at these values.
    fixed_settings = {name: (value, "(an autoencoder has no posterior to sample and no KL term)")
                      for name, value in options.defaults("kl", "objective",
                                                          "num_samples").items()}

    def __init__(self, *args, **kwargs):
        check_fixed_settings(type(self), kwargs)
        # Files saved before the autoencoder stopped taking them hold them at these values.
        for name in self.fixed_settings:
            kwargs.pop(name, None)
        super().__init__(*args, **kwargs)

    def make_encoder(self):
        return CodeEncoder(self.network_body("encoder"), self.latent_dim, name="encoder")

    # -- the model ---------------------------------------------------------------------------

    def code(self, x):
        """The deterministic code f(x) [B, D]."""
        return self.encoder(self.encoder_input(self.images(x)))

    def encode(self, x, labels=None):
        """The code as a point mass (batch [B], event [D]), so it reads like the VAE's q(z|x):
        ``mean()`` is f(x) and ``stddev()`` is 0. No labels: an autoencoder is unconditional."""
        self.label_codes(labels)
        return tfd.Independent(tfd.Deterministic(loc=self.code(x)), reinterpreted_batch_ndims=1)

    def reconstruct(self, x, labels=None):
        """The mean of p(x|z) at z = f(x): [B, *E]."""
        self.label_codes(labels)
        return self.decode(self.code(x)).mean()

    def log_likelihood(self, x):
        """log p(x | z = f(x)) per example [B], in nats."""
        x = self.images(x)
        return self.decode(self.code(x)).log_prob(x)

    # -- training ----------------------------------------------------------------------------

    def train_step(self, data):
        x = self.batch_inputs(data)
        with tf.GradientTape() as tape:
            reconstruction = self.log_likelihood(x)
            loss = -tf.reduce_mean(reconstruction) + self._weight_penalty()
            scaled_loss = self.scaled_loss(loss)
        grads = tape.gradient(scaled_loss, self.trainable_variables)
        self.apply_update(grads, self.trainable_variables)
        return self.update_metrics({"loss": loss, "reconstruction": reconstruction})

    def test_step(self, data):
        reconstruction = self.log_likelihood(self.batch_inputs(data))
        return self.update_metrics({"loss": -tf.reduce_mean(reconstruction),
                                    "reconstruction": reconstruction})

