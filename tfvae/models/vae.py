"""``tfvae.VAE``: Auto-Encoding Variational Bayes (Kingma & Welling, 2013).

Shapes: ``B`` batch, ``S`` samples per datapoint (the paper's L), ``D`` latent dimension, ``E``
image shape [H, W, C].
"""

import tensorflow as tf

from tfvae import estimators, noise, options
from tfvae.checks import check_choice, check_int
from tfvae.models.base import LatentVariableModel, register


@register("vae")
class VAE(LatentVariableModel):
    """The recognition model q(z|x) and generative model p(x|z)p(z), trained jointly.

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
    the step. Each example's noise (binarization and z) comes from the step's seed and the
    example's place in the global batch (``tfvae.noise``), so training under ``tf.distribute``
    computes what one device computes with the same global batch.

    The network settings are those of :class:`tfvae.models.base.LatentVariableModel`.
    """

    metric_names = ("loss", "elbo", "reconstruction", "kl")
    dynamic_binarization = False

    def __init__(self, *args, kl="analytic", objective="elbo", num_samples=1, **kwargs):
        self.kl = check_choice("kl", kl, options.KL_ESTIMATORS)
        self.objective = check_choice("objective", objective, options.OBJECTIVES)
        self.num_samples = check_int("num_samples", num_samples)
        super().__init__(*args, **kwargs)

    # -- objectives --------------------------------------------------------------------------

    def bound_terms(self, x, seed=None):
        """Per-example ``bound`` (what training maximizes), ``elbo``, ``reconstruction``, ``kl``."""
        x = self.images(x)
        return self._bound_terms(x, self._seed(seed), noise.batch_layout(tf.shape(x)[0]))

    def _bound_terms(self, x, seed, layout):
        q = self.encode(x)
        if self.objective == "iwae":
            terms = estimators.iwae_terms(q, self.decode, self.prior, x,
                                          num_samples=self.num_samples, seed=seed, layout=layout)
            terms["bound"] = terms.pop("iwae")
        else:
            terms = estimators.elbo_terms(q, self.decode, self.prior, x, kl=self.kl,
                                          num_samples=self.num_samples, seed=seed, layout=layout)
            terms["bound"] = terms["elbo"]
        return terms

    def elbo(self, x, seed=None):
        """The per-example ELBO [B] by this model's estimator."""
        return self.bound_terms(x, seed)["elbo"]

    # -- training ----------------------------------------------------------------------------

    def train_step(self, data):
        x = self.batch_inputs(data)
        layout = noise.batch_layout(tf.shape(x)[0])
        seed = self._seed()
        if self.dynamic_binarization:
            binarize_seed, seed = tf.unstack(noise.split(seed))
            x = noise.bernoulli(x, binarize_seed, layout)
        with tf.GradientTape() as tape:
            terms = self._bound_terms(x, seed, layout)
            loss = -tf.reduce_mean(terms["bound"]) + self._weight_penalty()
            scaled_loss = self.scaled_loss(loss)
        grads = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return self.update_metrics({"loss": loss, **terms})

    def test_step(self, data):
        terms = self.bound_terms(self.batch_inputs(data))
        return self.update_metrics({"loss": -tf.reduce_mean(terms["bound"]), **terms})

    def get_config(self):
        return {**super().get_config(), "kl": self.kl, "objective": self.objective,
                "num_samples": self.num_samples}
