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
needs the index of every example, from :func:`indexed_pipeline`, and memory for N latents.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import data as datasets
from tfvae.distributions import likelihood_layer
from tfvae.errors import InputError
from tfvae.model import (Decoder, _check_int, loss_to_differentiate, network_config,
                         network_kwargs, set_network_settings, weight_penalty)
from tfvae.networks import decoder_body

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="tfvae")
class MCEM(keras.Model):
    """A decoder p(x|z) with prior N(0, I), fitted by Monte Carlo EM on ``num_train`` examples.

    Trained with ``fit`` on ``(x, index)`` batches from :func:`indexed_pipeline`. The network
    options are those of :class:`tfvae.VAE`. Metrics: ``loss`` (the M-step loss, per example),
    ``log_joint`` (log p(x, z) at the new sample, before the M-step), ``acceptance`` (mean HMC
    acceptance probability) and ``step_size`` (mean leapfrog step size).
    """

    def __init__(self, num_train, image_shape=(28, 28, 1), latent_dim=3, hidden=100, depth=1,
                 activation="tanh", architecture="mlp", likelihood="bernoulli",
                 gaussian_scale="network", kernel_initializer="glorot_uniform", weight_decay=0.0,
                 leapfrog_steps=10, weight_updates=5, target_accept=0.9, initial_step_size=0.05,
                 adaptation_rate=2.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("num_train", num_train), ("latent_dim", latent_dim),
                            ("leapfrog_steps", leapfrog_steps),
                            ("weight_updates", weight_updates)):
            _check_int(name, value)
        if not 0 < target_accept < 1:
            raise InputError("target_accept", "a number in (0, 1)", repr(target_accept))
        if not initial_step_size > 0:
            raise InputError("initial_step_size", "a number > 0", repr(initial_step_size))
        if not adaptation_rate > 0:
            raise InputError("adaptation_rate", "a number > 0", repr(adaptation_rate))
        set_network_settings(self, image_shape, latent_dim, hidden, depth, activation,
                             architecture, likelihood, gaussian_scale, kernel_initializer,
                             weight_decay, seed)
        self.num_train = num_train
        self.leapfrog_steps = leapfrog_steps
        self.weight_updates = weight_updates
        self.target_accept = float(target_accept)
        self.initial_step_size = float(initial_step_size)
        self.adaptation_rate = float(adaptation_rate)
        self.decoder = Decoder(
            decoder_body(architecture, self.image_shape, hidden, depth, activation,
                         kernel_initializer),
            likelihood_layer(likelihood, self.image_shape, gaussian_scale),
            name="decoder",
        )
        # The chains start from the prior; they are model state, saved with the weights.
        self.latents = self.add_weight(
            name="latents", shape=(num_train, latent_dim), trainable=False,
            initializer=keras.initializers.RandomNormal(stddev=1.0, seed=seed))
        self.step_sizes = self.add_weight(
            name="step_sizes", shape=(num_train,), trainable=False,
            initializer=keras.initializers.Constant(initial_step_size))
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.log_joint_tracker = keras.metrics.Mean(name="log_joint")
        self.acceptance_tracker = keras.metrics.Mean(name="acceptance")
        self.step_size_tracker = keras.metrics.Mean(name="step_size")
        self.decoder.build((None, latent_dim))
        self.built = True

    @property
    def prior(self):
        """p(z) = N(0, I)."""
        return tfd.MultivariateNormalDiag(loc=tf.zeros([self.latent_dim]))

    def decode(self, z):
        """p(x|z), a ``tfd`` distribution with batch [*S] and event E, for z [*S, D]."""
        return self.decoder(z)

    def sample(self, num, seed=None):
        """``num`` images [num, *E]: the mean of p(x|z) for z ~ p(z)."""
        return self.decode(self.prior.sample(num, seed=seed)).mean()

    def call(self, z):
        return self.decode(z).mean()

    @property
    def metrics(self):
        return [self.loss_tracker, self.log_joint_tracker, self.acceptance_tracker,
                self.step_size_tracker]

    def train_step(self, data):
        if not (isinstance(data, (tuple, list)) and len(data) >= 2):
            raise InputError("MCEM data", "(x, index) batches from tfvae.baselines.indexed_pipeline",
                             "batches of x alone")
        x = tf.cast(data[0], tf.float32)
        index = tf.cast(tf.reshape(data[1], [-1]), tf.int32)
        seed = tf.cast(self.seed_generator.next(), tf.int32)

        # E-step: one HMC transition per example, from where its chain stopped.
        z0 = tf.gather(self.latents, index)
        step_size = tf.gather(self.step_sizes, index)[:, None]  # [B, 1], broadcasts over D

        def target_log_prob(z):  # log p(z) + log p(x|z), [B]
            return self.prior.log_prob(z) + self.decode(z).log_prob(x)

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
                loss = (-tf.reduce_mean(self.decode(z1).log_prob(x))
                        + weight_penalty(self.weight_decay, variables))
                scaled_loss = loss_to_differentiate(self.optimizer, loss)
            self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)

        self.loss_tracker.update_state(loss)
        self.log_joint_tracker.update_state(results.accepted_results.target_log_prob)
        self.acceptance_tracker.update_state(accept)
        self.step_size_tracker.update_state(new_step)
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        return {
            **super().get_config(),
            **network_config(self),
            "num_train": self.num_train,
            "leapfrog_steps": self.leapfrog_steps,
            "weight_updates": self.weight_updates,
            "target_accept": self.target_accept,
            "initial_step_size": self.initial_step_size,
            "adaptation_rate": self.adaptation_rate,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**network_kwargs(config))


def indexed_pipeline(x, *, batch_size, shuffle=True, dynamic_binarize=False, seed=0):
    """``(x, index)`` batches of the rows of ``x``, for :class:`MCEM`.

    Like :func:`tfvae.data.make_pipeline` (reshuffled each epoch, optionally a fresh Bernoulli
    sample of each batch), with each example's row number alongside it.
    """
    x = datasets.validate_images(x, argument="x", bernoulli=dynamic_binarize)
    shuffle_seed, noise_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(len(x), dtype=np.int32)))
    if shuffle:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if dynamic_binarize:
        noise = tf.data.Dataset.random(seed=noise_seed, rerandomize_each_iteration=True)

        def binarize(batch, batch_seed):
            xb, index = batch
            u = tf.random.stateless_uniform(tf.shape(xb), seed=tf.stack([batch_seed, 0]))
            return tf.cast(u < xb, tf.float32), index

        ds = tf.data.Dataset.zip(ds, noise).map(binarize, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
