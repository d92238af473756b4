"""Estimates of the marginal likelihood log p(x) of a trained model.

Two estimators, for any model with ``decode(z)`` -> p(x|z) (a ``tfd`` distribution with batch
[*S] for z [*S, D]) and ``prior`` -> p(z) (event [D]):

- ``method="importance"`` (needs ``encode(x)`` -> q(z|x)): the importance-sampled estimate
  log (1/k) sum_l p(x, z_l) / q(z_l|x) with z_l ~ q(z|x). It is a stochastic lower bound whose
  expectation rises to log p(x) as k grows (Burda et al., 2015).
- ``method="hmc"``: the paper's estimator (Kingma & Welling, 2013, appendix D), which needs no
  encoder.

The formulas are in ``tfvae.estimators``; this module runs them over a dataset in batches, with
bounded memory and compiled graphs, and returns per-example values.
"""

import dataclasses
import functools
import math
import sys
import time
import weakref

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import estimators
from tfvae.checks import check_choice, check_int, check_labels, check_number, check_seed
from tfvae.data.validation import model_images
from tfvae.errors import InputError, arg
from tfvae.options import LOG_LIKELIHOOD_METHODS, LOG_LIKELIHOOD_SAMPLES
HMC_CHAINS = 5  # chains per example of the HMC estimator, by default
CHUNK_SAMPLES = 100  # importance samples a chunk holds at least, where k has as many
# Compiled estimators per model and settings: tracing an HMC chain takes seconds, and
# evaluations during training call the estimator again and again on the same model.
_COMPILED = weakref.WeakKeyDictionary()


def compiled(model, key, make):
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


def log_likelihood(model, data, num_samples=LOG_LIKELIHOOD_SAMPLES, *, method="importance", batch_size=100,
                   seed=0, verbose=0, labels=None, **hmc_options):
    """Estimate log p(x) for each example of ``data`` [N, *E] (log p(x|y) given the ``labels``
    of a conditional model); returns a :class:`LogLikelihood`.

    ``method`` is "importance" (``num_samples`` = k draws from q(z|x) per example) or "hmc"
    (``num_samples`` = L posterior draws per example for each of the two stages; further options
    go to :func:`hmc_log_likelihood`). ``verbose`` prints progress to stderr.
    """
    check_choice("method", method, LOG_LIKELIHOOD_METHODS)
    if method == "hmc":
        return hmc_log_likelihood(model, data, num_samples, batch_size=batch_size, seed=seed,
                                  verbose=verbose, labels=labels, **hmc_options)
    if hmc_options:
        raise InputError("options", "no HMC options with method='importance'",
                         repr(sorted(hmc_options)))
    num_samples = check_int("num_samples", num_samples)
    batch_size = check_int("batch_size", batch_size)
    seed = check_seed("seed", seed)
    # Any model with encode, decode and prior will do; tfvae's say whether they have them.
    if not (getattr(model, "has_encoder", hasattr(model, "encode"))
            and getattr(model, "has_bound", True)):
        raise InputError("model", "a model with an encoder q(z|x) and a prior for "
                         "method='importance' (use method='hmc' for models without an encoder)",
                         type(model).__name__)
    x = model_images(model, data, "data")
    labels = checked_labels(model, labels, x)
    # Memory holds so many decoded z: a decoder wider than its images (channels at full
    # resolution) takes fewer examples at a time, so that each chunk still holds 100 samples.
    at_once = estimators.decoded_per_chunk(values_per_decoded_row(model))
    batch_size = max(1, min(batch_size, at_once // min(num_samples, CHUNK_SAMPLES)))
    chunk_size = max(1, min(num_samples, at_once // batch_size))

    def make():
        def batch_log_px(xb, batch_seed, lb=None):
            if hasattr(model, "log_weights"):  # tfvae's, in the fewest passes the model has
                weights = functools.partial(model.log_weights, xb, labels=lb)
            else:
                q, decode = _given_labels(model, xb, lb)
                weights = functools.partial(estimators.log_weights, q, decode, model.prior, xb)
            return estimators.importance_log_px(weights, num_samples=num_samples,
                                                seed=batch_seed, chunk_size=chunk_size)
        return batch_log_px

    batch_log_px = compiled(model, ("importance", num_samples, chunk_size), make)
    out = _map_batches(batch_log_px, x, batch_size, seed, verbose, "importance sampling",
                       labels)
    return LogLikelihood(out[0], "importance", num_samples)


def hmc_log_likelihood(model, data, num_samples=500, *, num_chains=HMC_CHAINS, burnin=200,
                       leapfrog_steps=10, target_accept=0.8, initial_step_size=0.1,
                       init_candidates=500, batch_size=100, seed=0, verbose=0, labels=None):
    """The estimator of the paper's appendix D; returns a :class:`LogLikelihood`.

    Per example, ``num_chains`` HMC chains start from prior draws resampled in proportion to
    p(x|z) among ``init_candidates`` (no encoder needed) and run ``burnin`` steps of
    ``leapfrog_steps`` leapfrog steps while each example's step size is adapted toward
    ``target_accept`` (``tfp.mcmc.SimpleStepSizeAdaptation``). The next ``num_samples`` draws
    (pooled over chains) fit a full-covariance Gaussian q(z); the ``num_samples`` draws after
    them go into the harmonic-mean formula. ``num_samples`` must be a multiple of
    ``num_chains`` and exceed the number of latent dimensions.
    """
    counts = {name: check_int(name, value) for name, value in (
        ("num_samples", num_samples), ("num_chains", num_chains), ("burnin", burnin),
        ("leapfrog_steps", leapfrog_steps), ("init_candidates", init_candidates))}
    batch_size = check_int("batch_size", batch_size)
    seed = check_seed("seed", seed)
    check_hmc_samples(num_samples, int(model.prior.event_shape[-1]), counts["num_chains"])
    settings = {
        "num_chains": counts["num_chains"], "burnin": counts["burnin"],
        "draws_per_chain": counts["num_samples"] // counts["num_chains"],
        "leapfrog_steps": counts["leapfrog_steps"],
        "init_candidates": counts["init_candidates"],
        "target_accept": check_number("target_accept", target_accept, above=0, below=1),
        "initial_step_size": check_number("initial_step_size", initial_step_size, above=0),
        "decoded_at_once": estimators.decoded_per_chunk(values_per_decoded_row(model)),
    }
    x = model_images(model, data, "data")
    labels = checked_labels(model, labels, x)
    batch_log_px = compiled(
        model, ("hmc", *sorted(settings.items())),
        lambda: lambda xb, batch_seed, lb=None: estimators.hmc_log_px(
            _given_labels(model, None, lb)[1], model.prior, xb, batch_seed, **settings))
    per_example, acceptance = _map_batches(batch_log_px, x, batch_size, seed, verbose,
                                           "HMC (appendix D)", labels)
    return LogLikelihood(per_example, "hmc", num_samples, float(np.mean(acceptance)))


def values_per_decoded_row(model):
    """The values one importance sample of z holds at its widest: its image's, the decoder's
    features at full resolution (a convolutional decoder's channels) or a VampPrior's density
    (every component's mean and scale for each z), whichever are the most."""
    values = math.prod(getattr(model, "image_shape", ()) or (1,))
    body = getattr(getattr(model, "decoder", None), "body", None)
    if hasattr(body, "compute_output_shape") and hasattr(model, "latent_dim"):
        values = max(values, math.prod(body.compute_output_shape((1, model.latent_dim))[1:]))
    if getattr(model, "prior_name", None) == "vamp":
        values = max(values, 2 * model.prior_components * model.latent_dim)
    return values


def check_hmc_samples(num_samples, latent_dim, num_chains=HMC_CHAINS):
    """Refuse a ``num_samples`` the HMC estimator cannot use: its draws are pooled over
    ``num_chains`` chains, and the Gaussian fitted to them has a full covariance, which fewer
    draws than ``latent_dim`` + 1 leave singular (a NaN or an absurd log p(x))."""
    num_samples = check_int("num_samples", num_samples)
    hmc = arg("method", "hmc")
    if num_samples % num_chains:
        raise InputError("num_samples", f"a multiple of {num_chains} with {hmc} (the draws of "
                         f"{num_chains} chains per example)", repr(num_samples))
    if num_samples <= latent_dim:
        raise InputError("num_samples", f"more than the model's {latent_dim} latent dimensions "
                         f"with {hmc} (the Gaussian fitted to its draws has a full covariance)",
                         repr(num_samples))


def checked_labels(model, labels, x):
    """A conditional model's labels for the images ``x``, checked; None for another model."""
    if labels is None and not getattr(model, "conditional", False):
        return None
    model.label_codes(labels, len(x))  # refuses labels missing, unwanted or out of range
    return check_labels("labels", labels, model.num_classes, len(x))


def _given_labels(model, x, labels):
    """(q(z|x) or None without ``x``, the decode callable), given a conditional model's
    ``labels``; without labels, the model's own (any model with encode and decode will do)."""
    if labels is None:
        return (None if x is None else model.encode(x)), model.decode
    return (None if x is None else model.encode(x, labels)), lambda z: model.decode(z, labels)


def _map_batches(fn, x, batch_size, seed, verbose, label, labels=None):
    """Apply ``fn(x_batch, seed_batch[, labels_batch]) -> tensors [B]`` over x; returns
    concatenated arrays."""
    seeds = tfp.random.split_seed(tf.constant([seed, 0], tf.int32), n=math.ceil(len(x) / batch_size))
    outputs = []
    start = time.perf_counter()
    for i, begin in enumerate(range(0, len(x), batch_size)):
        batch = [tf.constant(x[begin:begin + batch_size]), seeds[i]]
        if labels is not None:
            batch.append(tf.constant(labels[begin:begin + batch_size]))
        result = fn(*batch)
        result = result if isinstance(result, (tuple, list)) else (result,)
        outputs.append([np.asarray(r) for r in result])
        if verbose:
            done = min(begin + batch_size, len(x))
            print(f"\rlog p(x), {label}: {done}/{len(x)} examples, "
                  f"{time.perf_counter() - start:.0f} s", end="", file=sys.stderr, flush=True)
    if verbose:
        print(file=sys.stderr)
    return [np.concatenate(parts) for parts in zip(*outputs)]
