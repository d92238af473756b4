"""Monte Carlo objectives built from the model's distributions (the paper's section 2.3).

Every function takes the posterior ``q`` = q(z|x) (batch [B], event [D]), a ``decode`` callable
that maps z [S, B, D] to p(x|z) (batch [S, B]), the prior p(z), the data ``x`` [B, *E] and a
stateless ``seed`` (int32 [2]). Results are per example, shape [B], in nats summed over pixels.
``layout`` (``tfvae.noise.batch_layout``) ties each example's noise to its place in the global
batch under tf.distribute; ``None`` on one device.

- SGVB estimator A (``kl="sampled"``): mean_l log p(x, z_l) - log q(z_l|x).
- SGVB estimator B (``kl="analytic"``): mean_l log p(x|z_l) - KL(q(z|x) || p(z)).
- The importance-weighted bound of Burda et al. (2015): log mean_l p(x, z_l) / q(z_l|x), which
  tends to log p(x) as the number of samples grows.
"""

import math

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import noise

KL_ESTIMATORS = ("analytic", "sampled")


def sample_posterior(q, num_samples, seed, layout=None):
    """z_l = mu + S eps_l ~ q(z|x) with eps_l ~ N(0, I): [S, B, D], differentiable in mu and S.

    ``q`` is a Gaussian with ``loc`` [B, D] and a ``scale`` linear operator (MultivariateNormalDiag
    and its kin). The noise comes from ``tfvae.noise`` rather than ``q.sample`` so that it is the
    same for an example whichever replica holds it.
    """
    loc = q.loc
    eps = noise.standard_normal(seed, [num_samples], tf.shape(loc)[0], tf.shape(loc)[1:], layout)
    return loc + q.scale.matvec(tf.cast(eps, loc.dtype))


def log_weights(q, decode, prior, x, num_samples, seed, layout=None):
    """log p(x|z) and log p(z) - log q(z|x) for z_l ~ q(z|x) (reparameterized), each [S, B]."""
    z = sample_posterior(q, num_samples, seed, layout)
    log_px_z = decode(z).log_prob(x)
    return log_px_z, prior.log_prob(z) - q.log_prob(z)


def elbo_terms(q, decode, prior, x, *, kl="analytic", num_samples=1, seed, layout=None):
    """The ELBO with its two parts: ``elbo`` = ``reconstruction`` - ``kl``, each [B]."""
    log_px_z, log_ratio = log_weights(q, decode, prior, x, num_samples, seed, layout)
    reconstruction = tf.reduce_mean(log_px_z, axis=0)
    if kl == "analytic":
        kl_term = q.kl_divergence(prior)
    elif kl == "sampled":
        kl_term = -tf.reduce_mean(log_ratio, axis=0)
    else:
        raise ValueError(f"kl: expected one of {KL_ESTIMATORS}, got {kl!r}")
    return {"elbo": reconstruction - kl_term, "reconstruction": reconstruction, "kl": kl_term}


def iwae_terms(q, decode, prior, x, *, num_samples, seed, layout=None):
    """The importance-weighted bound (``iwae``) beside estimator A's terms from the same samples."""
    log_px_z, log_ratio = log_weights(q, decode, prior, x, num_samples, seed, layout)
    log_w = log_px_z + log_ratio
    reconstruction = tf.reduce_mean(log_px_z, axis=0)
    kl_term = -tf.reduce_mean(log_ratio, axis=0)
    return {
        "iwae": tf.reduce_logsumexp(log_w, axis=0) - math.log(num_samples),
        "elbo": reconstruction - kl_term,
        "reconstruction": reconstruction,
        "kl": kl_term,
    }


def importance_log_px(q, decode, prior, x, *, num_samples, seed, chunk_size=500):
    """log p(x) ~= log (1/k) sum_l p(x, z_l) / q(z_l|x), in chunks of samples.

    Memory is bounded by ``chunk_size`` samples at a time; the chunks' log-sum-exps combine
    exactly, so the result does not depend on the chunk size.
    """
    chunk_size = min(chunk_size, num_samples)
    sizes = [chunk_size] * (num_samples // chunk_size)
    if num_samples % chunk_size:
        sizes.append(num_samples % chunk_size)
    seeds = tfp.random.split_seed(seed, n=len(sizes))
    partial = []
    for size, chunk_seed in zip(sizes, tf.unstack(seeds)):
        log_px_z, log_ratio = log_weights(q, decode, prior, x, size, chunk_seed)
        partial.append(tf.reduce_logsumexp(log_px_z + log_ratio, axis=0))
    return tf.reduce_logsumexp(tf.stack(partial), axis=0) - math.log(num_samples)
