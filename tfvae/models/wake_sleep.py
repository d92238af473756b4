"""The wake-sleep algorithm (Hinton, Dayan, Frey & Neal, 1995) on tfvae's networks.

It has the VAE's two networks and the same lower bound to report, but trains them with two
separate objectives instead of one:

- wake: z ~ q(z|x) for the data, then the decoder ascends log p(x|z) (z held fixed);
- sleep: a dream (z, x) ~ p(z) p(x|z), then the encoder ascends log q(z|x) on it.

Neither step follows the gradient of the ELBO, which is why the paper (its Figure 2) finds AEVB
optimizes the bound faster and further.
"""

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import estimators
from tfvae.errors import InputError
from tfvae.models.base import register
from tfvae.models.vae import VAE


@register("wake_sleep")
class WakeSleep(VAE):
    """Wake-sleep with the VAE's encoder (recognition model) and decoder (generative model).

    Takes the :class:`tfvae.VAE` options (``objective="elbo"``, ``num_samples`` draws of z in the
    wake phase and dreams per example in the sleep phase). ``weight_decay`` adds a Gaussian prior
    on each network's weights to its own phase's loss. Metrics, per example in nats: ``elbo``,
    ``reconstruction`` and ``kl`` (estimator B, for comparison with the VAE), ``wake``
    (E_q log p(x|z)) and ``sleep`` (log q(z|x) on dreams).
    """

    metric_names = VAE.metric_names + ("wake", "sleep")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.objective != "elbo":
            raise InputError("objective", "'elbo' for wake-sleep", repr(self.objective))
        # Neither phase follows the ELBO's gradient: the VAE's training controls do not apply.
        for name, default in (("beta", 1.0), ("kl_warmup_steps", 0), ("free_bits", 0.0),
                              ("gradient", "standard")):
            if getattr(self, name) != default:
                raise InputError(name, f"{default!r} for wake-sleep (it does not train by the "
                                 "ELBO's gradient)", repr(getattr(self, name)))

    def train_step(self, data):
        x = self.batch_inputs(data)
        wake_seed, sleep_seed, dream_seed = tfp.random.split_seed(self._seed(), n=3)
        batch = tf.shape(x)[0]
        decoder_vars = self.decoder.trainable_variables
        encoder_vars = self.encoder.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            # Wake: fit p(x|z) to the recognition model's explanations of the data. The bound
            # it reaches comes from the VAE's estimator B on the same draws; only the decoder
            # follows its reconstruction term, in which z is held fixed.
            terms = estimators.elbo_terms(self.encode(x), self.decode, self.prior, x,
                                          num_samples=self.num_samples, seed=wake_seed)
            wake = terms["reconstruction"]  # [B]
            wake_loss = -tf.reduce_mean(wake) + self._weight_penalty(decoder_vars)
            # Sleep: fit q(z|x) to dreams from the generative model (no gradient into it).
            z_dream = self.prior.sample([self.num_samples, batch], seed=sleep_seed)
            x_dream = tf.stop_gradient(self.decode(z_dream).sample(seed=dream_seed))
            flat_z = tf.reshape(z_dream, [-1, self.latent_dim])
            flat_x = tf.reshape(x_dream, [-1, *self.image_shape])
            sleep = self.encode(flat_x).log_prob(tf.stop_gradient(flat_z))  # [S*B]
            sleep_loss = -tf.reduce_mean(sleep) + self._weight_penalty(encoder_vars)
            scaled_wake = self.scaled_loss(wake_loss)
            scaled_sleep = self.scaled_loss(sleep_loss)
        grads = (tape.gradient(scaled_wake, decoder_vars)
                 + tape.gradient(scaled_sleep, encoder_vars))
        del tape
        # Apply in the model's own variable order: the optimizer's slots are saved and restored
        # in that order, so a checkpoint reloads into the right accumulators.
        by_variable = {id(v): g for v, g in zip(decoder_vars + encoder_vars, grads)}
        variables = self.trainable_variables
        # Both phases read the weights before either is updated: in graph mode the decoder's
        # update could otherwise run before the dreams are decoded.
        with tf.control_dependencies([x_dream, sleep, wake]):
            self.optimizer.apply([by_variable[id(v)] for v in variables], variables)
        return self.update_metrics({"loss": wake_loss + sleep_loss, **terms,
                                    "wake": wake, "sleep": sleep})
