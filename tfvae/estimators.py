"""The estimators: every formula of the paper and its successors, each once, as pure functions of
the model's distributions (the paper's section 2.3 and appendix D).

Most functions take the posterior ``q`` = q(z|x) (batch [B], event [D]), a ``decode`` callable
that maps z [S, B, D] to p(x|z) (batch [S, B]), the prior p(z), the data ``x`` [B, *E] and a
stateless ``seed`` (int32 [2]). Results are per example, shape [B], in nats summed over pixels.
``layout`` (``tfvae.noise.batch_layout``) ties each example's noise to its place in the global
batch under tf.distribute; ``None`` on one device. :func:`weight_terms` and
:func:`importance_log_px` take the importance weights' parts as :func:`log_weights` gives them
instead, so that a model may compute them in fewer passes (a hierarchy of latent groups:
``VAE.log_weights``).

- SGVB estimator A (``kl="sampled"``): mean_l log p(x, z_l) - log q(z_l|x).
- SGVB estimator B (``kl="analytic"``): mean_l log p(x|z_l) - KL(q(z|x) || p(z)).
- The importance-weighted bound of Burda et al. (2015): log mean_l p(x, z_l) / q(z_l|x), which
  tends to log p(x) as the number of samples grows; the importance-sampled log p(x) is the same
  formula with many samples, in chunks.
- The paper's HMC estimator of log p(x) (appendix D), which needs no encoder.
"""

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import noise
from tfvae.options import KL_ESTIMATORS

tfd = tfp.distributions
# Values decoded at once: bounds memory to about 20,000 decoded MNIST images, or to as many
# values of a decoder whose features are larger than its images (channels at full resolution).
DECODED_VALUES_PER_CHUNK = 20_000 * 784


def decoded_per_chunk(values_per_row):
    """How many z (times examples) to decode at once when each holds ``values_per_row`` values
    at its widest."""
    return max(1, DECODED_VALUES_PER_CHUNK // max(1, values_per_row))


def log_mean_exp(log_w, axis=0, count=None):
    """log (1/count) sum exp(log_w) along ``axis``, computed stably.

    ``count`` is the number of terms the mean is over: the length of ``axis`` unless ``log_w``
    holds log-sum-exps of chunks of them.
    """
    count = tf.shape(log_w)[axis] if count is None else count
    return tf.reduce_logsumexp(log_w, axis=axis) - tf.math.log(tf.cast(count, log_w.dtype))


def log_joint(decode, prior, x, z):
    """log p(x, z) = log p(z) + log p(x|z) for z [*S, B, D]: [*S, B]."""
    return prior.log_prob(z) + decode(z).log_prob(x)


def sample_posterior(q, num_samples, seed, layout=None):
    """z_l = mu + S eps_l ~ q(z|x) with eps_l ~ N(0, I): [S, B, D], differentiable in mu and S.

    ``q`` is a Gaussian with ``loc`` [B, D] and a ``scale`` linear operator (MultivariateNormalDiag
    and its kin). The noise comes from ``tfvae.noise`` rather than ``q.sample`` so that it is the
    same for an example whichever replica holds it. A flow posterior (a
    ``TransformedDistribution`` of such a Gaussian) maps that sample through its bijector, which
    caches the pair, so ``q.log_prob(z)`` at these z needs no inverse pass.
    """
    if not hasattr(q, "loc"):  # a flow: tfd's Gaussians are TransformedDistributions too
        return q.bijector.forward(sample_posterior(q.distribution, num_samples, seed, layout))
    loc = q.loc
    eps = noise.standard_normal(seed, [num_samples], tf.shape(loc)[0], tf.shape(loc)[1:], layout)
    return loc + q.scale.matvec(tf.cast(eps, loc.dtype))


def draw_from_noise(distribution, eps, u):
    """One draw of ``distribution`` (event [D]) per row of the given noise: eps ~ N(0, I) [B, D]
    and u ~ U(0, 1) [B], the mixture component's; None for a distribution of another family.
    For the exports, whose noise must come from ops every runtime has
    (``tfvae.noise.CounterSeed``), not from ``distribution.sample``.

    - a Gaussian (N(0, I), a VampPrior's components): mu + S eps;
    - a flow of one (the prior of two stochastic layers): the bijector's image of that draw;
    - a mixture of Gaussians: component k, the first whose cumulative weight exceeds u, then
      its mu_k + S_k eps.
    """
    if isinstance(distribution, tfd.MultivariateNormalLinearOperator):
        return distribution.loc + distribution.scale.matvec(eps)
    if isinstance(distribution, tfd.MixtureSameFamily):
        components = distribution.components_distribution
        if not isinstance(components, tfd.MultivariateNormalLinearOperator):
            return None
        cumulative = tf.cumsum(distribution.mixture_distribution.probs_parameter(), axis=-1)
        k = tf.minimum(tf.reduce_sum(tf.cast(u[:, None] > cumulative, tf.int32), axis=-1),
                       tf.shape(cumulative)[-1] - 1)
        return tf.gather(components.mean(), k) + tf.gather(components.stddev(), k) * eps
    if isinstance(distribution, tfd.TransformedDistribution):
        base = draw_from_noise(distribution.distribution, eps, u)
        return None if base is None else distribution.bijector.forward(base)
    return None


def stopped(q):
    """``q`` with its parameters held fixed: its density at z is differentiated through z alone.

    With it, log q(z|x) at a reparameterized z keeps the pathwise gradient and drops the score
    function term, whose expectation is zero: the "sticking the landing" estimator (Roeder et
    al., 2017) and the doubly reparameterized one (Tucker et al., 2019) are built on it.
    """
    def stop(value):
        return tf.stop_gradient(value) if tf.is_tensor(value) else value

    return q.copy(**{name: tf.nest.map_structure(stop, value)
                     for name, value in q.parameters.items() if value is not None})


def log_weights(q, decode, prior, x, num_samples, seed, layout=None, stop_q=False):
    """log p(x|z) and log p(z) - log q(z|x) for z_l ~ q(z|x) (reparameterized), each [S, B].

    ``stop_q``: log q's parameters held fixed (:func:`stopped`); the values are the same.
    """
    z = sample_posterior(q, num_samples, seed, layout)
    log_px_z = decode(z).log_prob(x)
    return log_px_z, prior.log_prob(z) - (stopped(q) if stop_q else q).log_prob(z)


def elbo_terms(q, decode, prior, x, *, kl="analytic", num_samples=1, seed, layout=None,
               stop_q=False):
    """The ELBO with its two parts: ``elbo`` = ``reconstruction`` - ``kl``, each [B].

    ``stop_q`` (estimator A only) differentiates the sampled KL by its path through z alone.
    """
    log_px_z, log_ratio = log_weights(q, decode, prior, x, num_samples, seed, layout, stop_q)
    reconstruction = tf.reduce_mean(log_px_z, axis=0)
    if kl == "analytic":
        kl_term = q.kl_divergence(prior)
    elif kl == "sampled":
        kl_term = -tf.reduce_mean(log_ratio, axis=0)
    else:
        raise ValueError(f"kl: expected one of {KL_ESTIMATORS}, got {kl!r}")
    return {"elbo": reconstruction - kl_term, "reconstruction": reconstruction, "kl": kl_term}


def iwae_terms(q, decode, prior, x, *, num_samples, seed, layout=None, stop_q=False):
    """:func:`weight_terms` of S = ``num_samples`` draws z ~ q(z|x) (``stop_q``: see
    :func:`log_weights`)."""
    return weight_terms(*log_weights(q, decode, prior, x, num_samples, seed, layout, stop_q))


def weight_terms(log_px_z, log_ratio):
    """The importance-weighted bound (``iwae``) beside estimator A's terms of the same draws,
    and the log-weights ``log_w`` [S, B], from the parts :func:`log_weights` gives."""
    log_w = log_px_z + log_ratio
    reconstruction = tf.reduce_mean(log_px_z, axis=0)
    kl_term = -tf.reduce_mean(log_ratio, axis=0)
    return {
        "iwae": log_mean_exp(log_w),
        "elbo": reconstruction - kl_term,
        "reconstruction": reconstruction,
        "kl": kl_term,
        "log_w": log_w,
    }


def dreg_surrogate(log_w):
    """The doubly reparameterized surrogate of the IWAE bound for the encoder [B] (Tucker, Lawson,
    Gu & Maddison, 2019): sum_l stop(w~_l^2) log w_l, with w~ the normalized weights and log w
    from :func:`iwae_terms` with ``stop_q=True``. Its gradient in the encoder's parameters is an
    unbiased estimate of the bound's, with less variance; the decoder's is the bound's own."""
    normalized = tf.stop_gradient(tf.nn.softmax(log_w, axis=0))
    return tf.reduce_sum(tf.square(normalized) * log_w, axis=0)


def kl_weight(step, beta=1.0, warmup_steps=0):
    """The weight of the KL term at training step ``step``: rising linearly from 0 to ``beta``
    over ``warmup_steps`` (Sonderby et al., 2016), then ``beta`` (Higgins et al., 2017)."""
    if not warmup_steps:
        return tf.constant(beta, tf.float32)
    progress = tf.cast(step, tf.float32) / float(warmup_steps)
    return beta * tf.minimum(1.0, progress)


def kl_per_dimension(q, prior):
    """KL(q(z_d|x) || p(z_d)) for each latent dimension [B, D], in closed form, for a diagonal
    Gaussian posterior and prior (whose KL is the sum of these)."""
    marginal = tfd.Normal(q.mean(), q.stddev())
    return marginal.kl_divergence(tfd.Normal(prior.mean(), prior.stddev()))


def free_bits_kl(kl_dims, free_bits):
    """The KL the loss counts under free bits (Kingma et al., 2016): sum_d max(lambda, the batch
    mean of KL_d) for ``kl_dims`` [B, D], a scalar; ``free_bits`` lambda in nats per dimension.

    A dimension whose KL is under the floor adds a constant: no gradient pushes it lower."""
    return tf.reduce_sum(tf.maximum(tf.reduce_mean(kl_dims, axis=0), free_bits))


def map_in_turn(fn, elems, fn_output_signature):
    """``tf.map_fn`` one element after another: memory holds one element's work (parallel
    iterations would hold up to ten rows' importance samples at once), and the model never
    runs twice at once in one call (oneDNN ops that race there crashed the process:
    :meth:`tfvae.layers.groups.TopDown.add_z`)."""
    return tf.map_fn(fn, elems, fn_output_signature=fn_output_signature, parallel_iterations=1)


def importance_log_px(weights, *, num_samples, seed, chunk_size=500):
    """log p(x) ~= log (1/k) sum_l p(x, z_l) / q(z_l|x), in chunks of samples.

    ``weights(size, seed)`` gives the parts of the log-weights of ``size`` draws of z ~ q(z|x),
    as :func:`log_weights` does (a model's ``log_weights``, which may compute them in fewer
    passes). Memory is bounded by ``chunk_size`` samples at a time; the chunks' log-sum-exps
    combine exactly. Each chunk draws from its own seed, so another chunk size makes other
    draws of the same estimator.
    """
    chunk_size = min(chunk_size, num_samples)
    sizes = [chunk_size] * (num_samples // chunk_size)
    if num_samples % chunk_size:
        sizes.append(num_samples % chunk_size)
    partial = []
    for size, chunk_seed in zip(sizes, noise.split_seeds(seed, len(sizes))):
        log_px_z, log_ratio = weights(size, chunk_seed)
        partial.append(tf.reduce_logsumexp(log_px_z + log_ratio, axis=0))
    return log_mean_exp(tf.stack(partial), count=num_samples)


def hmc_log_px(decode, prior, x, seed, *, num_chains, draws_per_chain, burnin, leapfrog_steps,
               target_accept, initial_step_size, init_candidates, decoded_at_once):
    """The paper's estimator (appendix D): per-example log p(x) [B] and HMC acceptance [B].

    Hamiltonian Monte Carlo draws z from the posterior p(z|x) ∝ p(z) p(x|z); a Gaussian q(z) is
    fitted to the first ``num_chains * draws_per_chain`` draws; on as many fresh draws,
    1/p(x) = E_{p(z|x)}[q(z) / (p(z) p(x|z))], so
    log p(x) ~= -log (1/L) sum_l q(z_l) / (p(z_l) p(x|z_l)).
    This harmonic-mean form is accurate when the posterior has few dimensions, as in the paper.
    """
    batch = tf.shape(x)[0]
    init_seed, burn_seed, draw_seed = tfp.random.split_seed(seed, n=3)

    def target_log_prob(z):  # z [..., B, D] -> [..., B]
        return log_joint(decode, prior, x, z)

    # Chains [C, B, D] start from prior draws resampled by their likelihood p(x|z) (sampling
    # importance resampling): started from the prior itself, chains of a sharp posterior can
    # stay in a poor mode, and one such draw ruins the harmonic mean.
    z0 = _resampled_prior_draws(decode, prior, x, num_chains, init_candidates, init_seed,
                                decoded_at_once)
    # One step size per example [B, 1], shared by its chains, so the adaptation averages the
    # acceptance over an example's chains.
    step_size = tf.fill([batch, 1], tf.constant(initial_step_size, tf.float32))
    adaptive = tfp.mcmc.SimpleStepSizeAdaptation(
        tfp.mcmc.HamiltonianMonteCarlo(target_log_prob, step_size, leapfrog_steps),
        num_adaptation_steps=burnin, target_accept_prob=target_accept, adaptation_rate=0.05)
    burn = tfp.mcmc.sample_chain(
        num_results=1, current_state=z0, kernel=adaptive, num_burnin_steps=burnin - 1,
        trace_fn=None, return_final_kernel_results=True, seed=burn_seed)
    tuned = tfp.mcmc.HamiltonianMonteCarlo(target_log_prob,
                                           burn.final_kernel_results.new_step_size,
                                           leapfrog_steps)
    draws, (accepted, log_pxz) = tfp.mcmc.sample_chain(
        num_results=2 * draws_per_chain, current_state=burn.all_states[-1], kernel=tuned,
        trace_fn=lambda _, r: (r.is_accepted, r.accepted_results.target_log_prob),
        seed=draw_seed)
    latent_dim = draws.shape[-1]
    # [2n, C, B, D] -> the fitting draws and the fresh draws, each [n*C, B, D].
    draws = tf.reshape(draws, [2, -1, batch, latent_dim])
    log_pxz = tf.reshape(log_pxz, [2, -1, batch])
    q = _fit_gaussian(draws[0])
    log_px = -log_mean_exp(q.log_prob(draws[1]) - log_pxz[1])
    acceptance = tf.reduce_mean(tf.cast(accepted, tf.float32), axis=[0, 1])
    return log_px, acceptance


def _resampled_prior_draws(decode, prior, x, num_draws, num_candidates, seed, decoded_at_once):
    """``num_draws`` z per example [num_draws, B, D]: resampled from ``num_candidates`` prior
    draws with weights p(x|z), decoded ``decoded_at_once`` z at a time to bound memory."""
    candidate_seed, pick_seed = tfp.random.split_seed(seed, n=2)
    batch = tf.shape(x)[0]
    z = prior.sample([num_candidates, batch], seed=candidate_seed)  # [K, B, D]
    chunk = max(1, decoded_at_once // max(int(x.shape[0] or 100), 1))
    log_lik = tf.concat([decode(z[i:i + chunk]).log_prob(x)
                         for i in range(0, num_candidates, chunk)], axis=0)  # [K, B]
    picks = tfd.Categorical(logits=tf.transpose(log_lik)).sample(num_draws, seed=pick_seed)
    by_example = tf.gather(tf.transpose(z, [1, 0, 2]), tf.transpose(picks), batch_dims=1)
    return tf.transpose(by_example, [1, 0, 2])


def _fit_gaussian(z):
    """A full-covariance Gaussian per example fitted to draws z [S, B, D] (batch [B])."""
    mean = tf.reduce_mean(z, axis=0)
    centered = z - mean
    cov = tf.einsum("sbi,sbj->bij", centered, centered) / tf.cast(tf.shape(z)[0] - 1, tf.float32)
    # A small ridge keeps the Cholesky factor defined when the draws barely move.
    cov += 1e-6 * tf.eye(z.shape[-1], batch_shape=[1])
    return tfd.MultivariateNormalTriL(loc=mean, scale_tril=tf.linalg.cholesky(cov))
