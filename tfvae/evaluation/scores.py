"""Anomaly scores: one number per example, higher meaning more unusual, and the threshold that
flags an example as an anomaly at a chosen false-positive rate.

The score is minus a bound on, or an estimate of, log p(x): an example the model finds unlikely
scores high. ``method="elbo"`` averages the ELBO over ``num_samples`` draws of z (fast);
``method="importance"`` is the importance-sampled log p(x) with ``num_samples`` draws
(``tfvae.log_likelihood``), tighter and slower. An autoencoder, which has no bound, scores by its
reconstruction log p(x | f(x)). Every score is seeded: the same call gives the same numbers.
"""

import dataclasses

import numpy as np

from tfvae.checks import check_choice, check_int, check_number, check_seed
from tfvae.errors import InputError

SCORE_METHODS = ("elbo", "importance")
# Draws of z per example: the ELBO's average over 16 draws varies about a quarter as much as a
# one-draw ELBO; importance sampling needs more to be tighter than it.
DEFAULT_SAMPLES = {"elbo": 16, "importance": 256}


def score(model, x, *, method="elbo", num_samples=None, seed=0, batch_size=500,
                   labels=None):
    """Minus ``method``'s estimate of log p(x) for each example of ``x`` [N, *E], float64 [N]
    (given the ``labels`` of a conditional model)."""
    import tensorflow as tf

    from tfvae.data import model_images
    from tfvae.evaluation.likelihood import checked_labels, compiled, log_likelihood

    check_choice("method", method, SCORE_METHODS)
    num_samples = check_int("num_samples", DEFAULT_SAMPLES[method] if num_samples is None
                            else num_samples)
    seed = check_seed("seed", seed)
    batch_size = check_int("batch_size", batch_size)
    x = model_images(model, x, "x")
    if not model.has_encoder:
        raise InputError("model", "a model with an encoder q(z|x) (a VAE or an autoencoder)",
                         type(model).__name__)
    if not model.has_bound:  # an autoencoder: its reconstruction is all there is
        return -np.concatenate([np.asarray(model.log_likelihood(x[i:i + batch_size]), np.float64)
                                for i in range(0, len(x), batch_size)])
    if method == "importance":
        return -log_likelihood(model, x, num_samples, batch_size=batch_size, seed=seed,
                               labels=labels).per_example.astype(np.float64)
    labels = checked_labels(model, labels, x)
    batch_scores = compiled(model, ("elbo score", num_samples), lambda: _elbo_scores(model))
    scores = []
    for start in range(0, len(x), batch_size):
        part = slice(start, start + batch_size)
        # One seed per batch and draw: scores do not depend on what else is scored.
        seeds = [[seed % 2 ** 31, (seed // 2 ** 31) * 2 ** 30 + start * num_samples + draw]
                 for draw in range(num_samples)]
        batch = [tf.constant(x[part]), tf.constant(seeds, tf.int32)]
        if labels is not None:
            batch.append(tf.constant(labels[part]))
        scores.append(np.asarray(batch_scores(*batch), np.float64))
    return np.concatenate(scores)


def _elbo_scores(model):
    """fn(x [B, *E], seeds int32 [S, 2][, labels [B]]) -> minus the ELBO averaged over the S
    seeds' draws [B], one compiled call for every draw of a batch."""
    import tensorflow as tf

    from tfvae import estimators

    def batch_scores(x, seeds, labels=None):
        elbos = estimators.map_in_turn(lambda pair: model.elbo(x, seed=pair, labels=labels),
                                       seeds, tf.TensorSpec([None], tf.float32))
        return -tf.reduce_mean(tf.cast(elbos, tf.float64), axis=0)
    return batch_scores


@dataclasses.dataclass(frozen=True)
class Threshold:
    """The score above which an example is flagged: the (1 - ``false_positive_rate``) quantile
    of the scores of ``examples`` held-out normal examples, by ``method`` with
    ``num_samples`` draws and ``seed``."""

    threshold: float
    false_positive_rate: float
    method: str
    num_samples: int
    seed: int
    examples: int

    def flags(self, scores):
        """Whether each score is above the threshold (an anomaly)."""
        return np.asarray(scores) > self.threshold


def calibrate_threshold(normal_scores, false_positive_rate=0.01, *, method="elbo",
                        num_samples=None, seed=0):
    """The :class:`Threshold` that flags at most ``false_positive_rate`` of ``normal_scores``
    (scores of normal examples the model was not trained on)."""
    rate = check_number("false_positive_rate", false_positive_rate, above=0, below=1)
    scores = np.asarray(normal_scores, np.float64)
    if scores.ndim != 1 or len(scores) < 2 or not np.all(np.isfinite(scores)):
        raise InputError("normal_scores", "at least 2 finite scores [N]",
                         f"shape {scores.shape}" if scores.ndim != 1 or len(scores) < 2
                         else "non-finite scores")
    # "higher": the threshold is a score that occurred, and at most a share `rate` lie above it.
    threshold = float(np.quantile(scores, 1 - rate, method="higher"))
    return Threshold(threshold, rate, method,
                     DEFAULT_SAMPLES[method] if num_samples is None else int(num_samples),
                     int(seed), len(scores))
