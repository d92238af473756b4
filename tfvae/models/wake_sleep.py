"""The wake-sleep algorithm (Hinton, Dayan, Frey & Neal, 1995) on tfvae's networks.

It has the VAE's two networks and the same lower bound to report, but trains them with two
separate objectives instead of one:

- wake: z ~ q(z|x) for the data, then the decoder ascends log p(x|z) (z held fixed);
- sleep: a dream (z, x) ~ p(z) p(x|z), then the encoder ascends log q(z|x) on it.

Neither step follows the gradient of the ELBO, which is why the paper (its Figure 2) finds AEVB
optimizes the bound faster and further.
"""

import tensorflow as tf

from tfvae import estimators, noise
from tfvae.models.registry import register
from tfvae.models.settings import check_fixed_settings
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

    # The wake phase fits the decoder alone: a prior with parameters would never learn; and
    # neither phase follows the ELBO's gradient, so the VAE's training controls do not apply.
    fixed_settings = {
        "objective": ("elbo", "for wake-sleep"),
        **{name: (value, "for wake-sleep (its wake phase fits the decoder, not the prior)")
           for name, value in (("prior", "normal"), ("stochastic_layers", 1),
                                              ("latent_groups", 1))},
        **{name: (value, "for wake-sleep (it does not train by the ELBO's gradient)")
           for name, value in (("beta", 1.0), ("kl_warmup_steps", 0), ("free_bits", 0.0),
                               ("gradient", "standard"))},
    }

    def __init__(self, *args, **kwargs):
        check_fixed_settings(type(self), kwargs)
        super().__init__(*args, **kwargs)

    def dream(self, num, seed):
        """``num`` dreams (z, x) ~ p(z) p(x|z) [num, D], [num, *E], held fixed (no gradient).

        The noise comes from ``tfvae.noise`` (not ``distribution.sample``), so an XLA-compiled
        step dreams what an uncompiled one does.
        """
        # Three seeds, the second unused: the normal prior (the only one wake-sleep takes) needs
        # no mixture component, and the third keeps the dreams of the runs already recorded.
        z_seed, _, x_seed = tf.unstack(noise.split(seed, 3))
        eps = noise.standard_normal(z_seed, [], num, [self.latent_dim])
        z = estimators.draw_from_noise(self.prior, eps, None)
        x = self.decoder.likelihood.draw(self.decode(z), x_seed)
        return tf.stop_gradient(z), tf.stop_gradient(x)

    def train_step(self, data):
        x = self.batch_inputs(data)
        wake_seed, sleep_seed = tf.unstack(noise.split(self._seed()))
        batch = tf.shape(x)[0]
        decoder_vars = self.decoder.trainable_variables
        encoder_vars = self.encoder.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            # Wake: fit p(x|z) to the recognition model's explanations of the data. The bound
            # it reaches comes from the VAE's estimator B on the same draws; only the decoder
            # follows its reconstruction term, in which z is held fixed.
            terms = estimators.elbo_terms(self.encode(x), self.decode, self.prior, x, kl=self.kl,
                                          num_samples=self.num_samples, seed=wake_seed)
            wake = terms["reconstruction"]  # [B]
            wake_loss = -tf.reduce_mean(wake) + self._weight_penalty(decoder_vars)
            # Sleep: fit q(z|x) to dreams from the generative model (no gradient into it).
            flat_z, flat_x = self.dream(self.num_samples * batch, sleep_seed)
            sleep = self.encode(flat_x).log_prob(flat_z)  # [S*B]
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
        if not self.optimizer.built:
            # Its slots are created here, outside the control dependencies below: XLA can lift
            # a variable's creation out of the step only from outside them.
            self.optimizer.build(variables)
        # Both phases read the weights before either is updated: in graph mode the decoder's
        # update could otherwise run before the dreams are decoded.
        with tf.control_dependencies([flat_x, sleep, wake]):
            self.apply_update([by_variable[id(v)] for v in variables], variables)
        return self.update_metrics({"loss": wake_loss + sleep_loss, **terms,
                                    "wake": wake, "sleep": sleep})
