"""Monte Carlo EM with Hamiltonian Monte Carlo, as in the paper's appendix E.

There is no encoder. Each training example i keeps its own latent z_i, a Markov chain whose
stationary distribution is the posterior p(z|x_i) under the current decoder. One training step on
a minibatch:

- E-step (Monte Carlo): one HMC transition of ``leapfrog_steps`` (10) leapfrog steps for each
  example's chain; each example's log step size then moves by
  ``adaptation_rate`` (2) ``* (acceptance probability - target_accept)``, a Robbins-Monro rule
  whose fixed point is a mean acceptance of ``target_accept`` (0.9), as the posterior sharpens.
  An example's step size moves once per visit, once an epoch, so the rate is high: at 0.5 the
  acceptance stays above 0.95 for 30 epochs on Figure 3's setup (too small a step) while the
  chains and the decoder drift together (``benchmarks/mcem_adaptation.py``);
- M-step: ``weight_updates`` (5) optimizer steps on -log p(x|z) at the new z (plus the weight
  prior), the z held fixed.

The chains are state carried across epochs, which is why MCEM is not an online algorithm: it
needs the index of every example (``tfvae.data.make_pipeline(..., with_index=True)``) and memory
for N latents.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import estimators
from tfvae.checks import check_int, check_number
from tfvae.errors import InputError
from tfvae.models.base import LatentVariableModel
from tfvae.models.registry import register


@register("mcem")
class MCEM(LatentVariableModel):
    """A decoder p(x|z) with prior N(0, I), fitted by Monte Carlo EM on ``num_train`` examples.

    Trained with ``fit`` on ``(x, index)`` batches (``make_pipeline(..., with_index=True)``).
    The network options are those of :class:`tfvae.VAE`. Metrics: ``loss`` (the M-step loss, per
    example), ``log_joint`` (log p(x, z) at the new sample, before the M-step), ``acceptance``
    (mean HMC acceptance probability) and ``step_size`` (mean leapfrog step size).
    """

    metric_names = ("loss", "log_joint", "acceptance", "step_size")
    needs_example_index = True

    def __init__(self, num_train, *args, latent_dim=3, hidden=100, leapfrog_steps=10,
                 weight_updates=5, target_accept=0.9, initial_step_size=0.05,
                 adaptation_rate=2.0, **kwargs):
        self.num_train = check_int("num_train", num_train)
        self.leapfrog_steps = check_int("leapfrog_steps", leapfrog_steps)
        self.weight_updates = check_int("weight_updates", weight_updates)
        self.target_accept = check_number("target_accept", target_accept, above=0, below=1)
        self.initial_step_size = check_number("initial_step_size", initial_step_size, above=0)
        self.adaptation_rate = check_number("adaptation_rate", adaptation_rate, above=0)
        super().__init__(*args, latent_dim=latent_dim, hidden=hidden, **kwargs)

    def make_encoder(self):
        return None  # the chains take the encoder's place

    def build(self, input_shape):
        # The chains start from the prior; they are model state, saved with the weights.
        self.latents = self.add_weight(
            name="latents", shape=(self.num_train, self.latent_dim), trainable=False,
            initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed))
        self.step_sizes = self.add_weight(
            name="step_sizes", shape=(self.num_train,), trainable=False,
            initializer=keras.initializers.Constant(self.initial_step_size))
        super().build(input_shape)

    def call(self, z):
        return self.decode(z).mean()

    def train_step(self, data):
        x, index, _ = keras.utils.unpack_x_y_sample_weight(data)
        if index is None:
            raise InputError("MCEM data", "(x, index) batches from "
                             "tfvae.data.make_pipeline(..., with_index=True)", "batches of x alone")
        x = tf.cast(x, tf.float32)
        index = tf.cast(tf.reshape(index, [-1]), tf.int32)
        seed = self._seed()

        # E-step: one HMC transition per example, from where its chain stopped.
        z0 = tf.gather(self.latents, index)
        step_size = tf.gather(self.step_sizes, index)[:, None]  # [B, 1], broadcasts over D

        def target_log_prob(z):  # [B]
            return estimators.log_joint(self.decode, self.prior, x, z)

        kernel = tfp.mcmc.HamiltonianMonteCarlo(target_log_prob, step_size, self.leapfrog_steps)
        z1, results = kernel.one_step(z0, kernel.bootstrap_results(z0), seed=seed)
        z1 = tf.stop_gradient(z1)
        accept = tf.exp(tf.minimum(results.log_accept_ratio, 0.0))
        accept = tf.where(tf.math.is_finite(accept), accept, 0.0)
        # Up after acceptance above the target, down after below, in proportion: the mean
        # acceptance (not its median, as with a fixed up/down factor) settles at the target.
        new_step = step_size[:, 0] * tf.exp(self.adaptation_rate * (accept - self.target_accept))
        self.latents.assign(tf.tensor_scatter_nd_update(self.latents, index[:, None], z1))
        self.step_sizes.assign(tf.tensor_scatter_nd_update(self.step_sizes, index[:, None],
                                                           new_step))

        # M-step: a few weight updates on the complete-data log-likelihood at the sample.
        variables = self.trainable_variables
        for _ in range(self.weight_updates):
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(self.decode(z1).log_prob(x)) + self._weight_penalty()
                scaled_loss = self.scaled_loss(loss)
            self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)

        return self.update_metrics({"loss": loss,
                                    "log_joint": results.accepted_results.target_log_prob,
                                    "acceptance": accept, "step_size": new_step})

    def get_config(self):
        return {
            **super().get_config(),
            "num_train": self.num_train,
            "leapfrog_steps": self.leapfrog_steps,
            "weight_updates": self.weight_updates,
            "target_accept": self.target_accept,
            "initial_step_size": self.initial_step_size,
            "adaptation_rate": self.adaptation_rate,
        }
