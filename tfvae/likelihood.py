"""Estimates of the marginal likelihood log p(x) of a trained model.

Two estimators, for any model with ``decode(z)`` -> p(x|z) (a ``tfd`` distribution with batch
[*S] for z [*S, D]) and ``prior`` -> p(z) (event [D]):

- ``method="importance"`` (needs ``encode(x)`` -> q(z|x)): the importance-sampled estimate
  log (1/k) sum_l p(x, z_l) / q(z_l|x) with z_l ~ q(z|x). It is a stochastic lower bound whose
  expectation rises to log p(x) as k grows (Burda et al., 2015).
- ``method="hmc"``: the paper's estimator (Kingma & Welling, 2013, appendix D), which needs no
  encoder. Hamiltonian Monte Carlo draws z from the posterior p(z|x) ∝ p(z) p(x|z); a Gaussian
  q(z) is fitted to the first L draws; on L fresh draws,
  1/p(x) = E_{p(z|x)}[q(z) / (p(z) p(x|z))], so
  log p(x) ~= -log (1/L) sum_l q(z_l) / (p(z_l) p(x|z_l)).
  This harmonic-mean form is accurate when the posterior has few dimensions, as in the paper.

Both work on batches of examples with bounded memory and return per-example values.
"""

import dataclasses
import math
import sys
import time
import weakref

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import objectives
from tfvae.errors import InputError

tfd = tfp.distributions

METHODS = ("importance", "hmc")
# Samples of z (times examples) decoded at once by the importance estimator: bounds memory to
# about this many decoded images per chunk.
_DECODED_PER_CHUNK = 20_000
# Compiled estimators per model and settings: tracing an HMC chain takes seconds, and
# evaluations during training call the estimator again and again on the same model.
_COMPILED = weakref.WeakKeyDictionary()


def _compiled(model, key, make):
    """``make()`` wrapped in ``tf.function``, cached per model and ``key``."""
    cache = _COMPILED.setdefault(model, {})
    if key not in cache:
        cache[key] = tf.function(make(), reduce_retracing=True)
    return cache[key]


@dataclasses.dataclass
class LogLikelihood:
    """Per-example estimates ``per_example`` [N] (nats) and their ``mean``.

    ``stderr`` is the standard error of the mean over examples; ``acceptance`` is the mean HMC
    acceptance rate (``method="hmc"`` only).
    """

    per_example: np.ndarray
    method: str
    num_samples: int
    acceptance: float | None = None

    @property
    def mean(self):
        return float(np.mean(self.per_example))

    @property
    def stderr(self):
        n = len(self.per_example)
        return float(np.std(self.per_example, ddof=1) / math.sqrt(n)) if n > 1 else 0.0


def log_likelihood(model, data, num_samples=5000, *, method="importance", batch_size=100,
                   seed=0, verbose=0, **hmc_options):
    """Estimate log p(x) for each example of ``data`` [N, *E]; returns a :class:`LogLikelihood`.

    ``method`` is "importance" (``num_samples`` = k draws from q(z|x) per example) or "hmc"
    (``num_samples`` = L posterior draws per example for each of the two stages; further options
    go to :func:`hmc_log_likelihood`). ``verbose`` prints progress to stderr.
    """
    if method not in METHODS:
        raise InputError("method", f"one of {METHODS}", repr(method))
    if method == "hmc":
        return hmc_log_likelihood(model, data, num_samples, batch_size=batch_size, seed=seed,
                                  verbose=verbose, **hmc_options)
    if hmc_options:
        raise InputError("options", "no HMC options with method='importance'",
                         repr(sorted(hmc_options)))
    _check_int("num_samples", num_samples)
    _check_int("batch_size", batch_size)
    if not hasattr(model, "encode"):
        raise InputError("model", "a model with an encoder q(z|x) for method='importance' "
                         "(use method='hmc' for models without one)", type(model).__name__)
    x = _check_data(model, data)
    chunk_size = max(1, min(num_samples, _DECODED_PER_CHUNK // batch_size))

    def make():
        def batch_log_px(xb, batch_seed):
            return objectives.importance_log_px(model.encode(xb), model.decode, model.prior, xb,
                                                num_samples=num_samples, seed=batch_seed,
                                                chunk_size=chunk_size)
        return batch_log_px

    batch_log_px = _compiled(model, ("importance", num_samples, chunk_size), make)
    out = _map_batches(batch_log_px, x, batch_size, seed, verbose, "importance sampling")
    return LogLikelihood(out[0], "importance", num_samples)


def hmc_log_likelihood(model, data, num_samples=500, *, num_chains=5, burnin=200,
                       leapfrog_steps=10, target_accept=0.8, initial_step_size=0.1,
                       init_candidates=500, batch_size=100, seed=0, verbose=0):
    """The estimator of the paper's appendix D; returns a :class:`LogLikelihood`.

    Per example, ``num_chains`` HMC chains start from prior draws resampled in proportion to
    p(x|z) among ``init_candidates`` (no encoder needed) and run ``burnin`` steps of
    ``leapfrog_steps`` leapfrog steps while each example's step size is adapted toward
    ``target_accept`` (``tfp.mcmc.SimpleStepSizeAdaptation``). The next ``num_samples`` draws
    (pooled over chains) fit a full-covariance Gaussian q(z); the ``num_samples`` draws after
    them go into the harmonic-mean formula. ``num_samples`` must be a multiple of
    ``num_chains``.
    """
    for name, value in (("num_samples", num_samples), ("num_chains", num_chains),
                        ("burnin", burnin), ("leapfrog_steps", leapfrog_steps),
                        ("init_candidates", init_candidates), ("batch_size", batch_size)):
        _check_int(name, value)
    if num_samples % num_chains:
        raise InputError("num_samples", f"a multiple of num_chains={num_chains}",
                         repr(num_samples))
    if not 0 < target_accept < 1:
        raise InputError("target_accept", "a number in (0, 1)", repr(target_accept))
    if not initial_step_size > 0:
        raise InputError("initial_step_size", "a number > 0", repr(initial_step_size))
    x = _check_data(model, data)
    draws_per_chain = num_samples // num_chains

    settings = (num_chains, draws_per_chain, burnin, leapfrog_steps, target_accept,
                initial_step_size, init_candidates)
    batch_log_px = _compiled(model, ("hmc", *settings),
                             lambda: lambda xb, batch_seed: _hmc_batch(model, xb, batch_seed,
                                                                       *settings))
    per_example, acceptance = _map_batches(batch_log_px, x, batch_size, seed, verbose,
                                           "HMC (appendix D)")
    return LogLikelihood(per_example, "hmc", num_samples, float(np.mean(acceptance)))


def _hmc_batch(model, x, seed, num_chains, draws_per_chain, burnin, leapfrog_steps,
               target_accept, initial_step_size, init_candidates):
    """Per-example log p(x) [B] and HMC acceptance [B] for a batch x [B, *E]."""
    prior = model.prior
    batch = tf.shape(x)[0]
    init_seed, burn_seed, draw_seed = tfp.random.split_seed(seed, n=3)

    def target_log_prob(z):  # z [..., B, D] -> log p(z) + log p(x|z), [..., B]
        return prior.log_prob(z) + model.decode(z).log_prob(x)

    # Chains [C, B, D] start from prior draws resampled by their likelihood p(x|z) (sampling
    # importance resampling): started from the prior itself, chains of a sharp posterior can
    # stay in a poor mode, and one such draw ruins the harmonic mean.
    z0 = _resampled_prior_draws(model, x, num_chains, init_candidates, init_seed)
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
    draws, (accepted, log_joint) = tfp.mcmc.sample_chain(
        num_results=2 * draws_per_chain, current_state=burn.all_states[-1], kernel=tuned,
        trace_fn=lambda _, r: (r.is_accepted, r.accepted_results.target_log_prob),
        seed=draw_seed)
    latent_dim = draws.shape[-1]
    # [2n, C, B, D] -> the fitting draws and the fresh draws, each [n*C, B, D].
    draws = tf.reshape(draws, [2, -1, batch, latent_dim])
    log_joint = tf.reshape(log_joint, [2, -1, batch])
    q = _fit_gaussian(draws[0])
    log_ratio = q.log_prob(draws[1]) - log_joint[1]
    n = tf.cast(tf.shape(log_ratio)[0], tf.float32)
    log_px = -(tf.reduce_logsumexp(log_ratio, axis=0) - tf.math.log(n))
    acceptance = tf.reduce_mean(tf.cast(accepted, tf.float32), axis=[0, 1])
    return log_px, acceptance


def _resampled_prior_draws(model, x, num_draws, num_candidates, seed):
    """``num_draws`` z per example [num_draws, B, D]: resampled from ``num_candidates`` prior
    draws with weights p(x|z), decoded in chunks to bound memory."""
    candidate_seed, pick_seed = tfp.random.split_seed(seed, n=2)
    batch = tf.shape(x)[0]
    z = model.prior.sample([num_candidates, batch], seed=candidate_seed)  # [K, B, D]
    chunk = max(1, _DECODED_PER_CHUNK // max(int(x.shape[0] or 100), 1))
    log_lik = tf.concat([model.decode(z[i:i + chunk]).log_prob(x)
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


def _map_batches(fn, x, batch_size, seed, verbose, label):
    """Apply ``fn(x_batch, seed_batch) -> tensors [B]`` over x; returns concatenated arrays."""
    seeds = tfp.random.split_seed(tf.constant([seed, 0], tf.int32), n=math.ceil(len(x) / batch_size))
    outputs = []
    start = time.perf_counter()
    for i, begin in enumerate(range(0, len(x), batch_size)):
        result = fn(tf.constant(x[begin:begin + batch_size]), seeds[i])
        result = result if isinstance(result, (tuple, list)) else (result,)
        outputs.append([np.asarray(r) for r in result])
        if verbose:
            done = min(begin + batch_size, len(x))
            print(f"\rlog p(x), {label}: {done}/{len(x)} examples, "
                  f"{time.perf_counter() - start:.0f} s", end="", file=sys.stderr, flush=True)
    if verbose:
        print(file=sys.stderr)
    return [np.concatenate(parts) for parts in zip(*outputs)]


def _check_data(model, data):
    try:
        x = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError("data", "an array of examples [N, *E]", f"{type(data).__name__} ({exc})")
    if x.ndim < 2 or len(x) == 0:
        raise InputError("data", "an array of examples [N, *E] with N >= 1", f"shape {x.shape}")
    expected = getattr(model, "image_shape", None)
    if expected is not None and tuple(x.shape[1:]) != tuple(expected):
        raise InputError("data", f"examples of shape {tuple(expected)} (the model's)",
                         f"shape {tuple(x.shape[1:])}")
    if not np.isfinite(x).all():
        raise InputError("data", "finite values", "NaN or infinite values")
    return x


def _check_int(argument, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(argument, "an integer >= 1", repr(value))
