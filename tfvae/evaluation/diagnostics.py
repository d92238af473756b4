"""Evaluating a trained model on data: the mean ELBO (or reconstruction) over a split, and what
the latent code is used for (the KL of each dimension, the active units)."""

import numpy as np
import tensorflow_probability as tfp

from tfvae import data as datasets
from tfvae import estimators
from tfvae.errors import InputError

# A unit is active when the variance over x of its posterior mean exceeds this (Burda et al.,
# 2015, section 5.2).
ACTIVE_UNIT_VARIANCE = 0.01
# What an epoch or an evaluation with no active unit says.
COLLAPSE = "no active latent unit: posterior collapse (the decoder ignores z)"
# Reconstructions whose squared error is this share of the mean image's or more are no better
# than it: the decoder draws one grey picture whatever the input. Active units do not show it:
# q(z|x) can vary with x while the decoder has not learned to read z.
GREY_RATIO = 0.98
GREY = ("test reconstructions are no better than the training set's mean image: the decoder "
        "gives the same grey picture whatever the input")


def evaluate_elbo(model, x, batch_size=500, dynamic_binarize=False, seed=0, labels=None):
    """Mean per-example ``elbo``, ``reconstruction`` and ``kl`` (nats) of ``model`` on ``x``
    (with the ``labels`` of a conditional model); an autoencoder gives ``reconstruction``
    alone. ``x`` may be a stream (``tfvae.data.streams``): its batches are read as they are
    evaluated."""
    if datasets.is_stream(x):
        if tuple(x.example_shape) != tuple(model.image_shape):
            raise InputError("x", f"examples of shape {tuple(model.image_shape)}, as the model "
                             "takes", f"{x.where} of shape {x.example_shape}")
    else:
        x = datasets.model_images(model, x, "x")
    model.label_codes(labels, len(x))  # refuses missing, unwanted or bad labels up front
    pipeline = datasets.make_pipeline(x, batch_size=batch_size, labels=labels,
                                      dynamic_binarize=dynamic_binarize, seed=seed)
    logs = model.evaluate(pipeline, verbose=0, return_dict=True)
    return {k: float(logs[k]) for k in ("elbo", "reconstruction", "kl") if k in logs}


def latent_diagnostics(model, x, batch_size=1000, labels=None):
    """What each latent dimension carries over the images ``x`` (with the ``labels`` of a
    conditional model), for a model with an encoder.

    Returns ``active_units`` (the dimensions whose posterior mean varies over x by more than
    ``ACTIVE_UNIT_VARIANCE``), ``mean_variance`` [D] (that variance) and ``kl_per_dimension`` [D]
    (KL(q(z_d|x) || p(z_d)) averaged over x, in nats; None unless the prior and posterior are
    diagonal Gaussians). ``active_units`` of 0 is posterior collapse: the decoder ignores z.
    """
    x = datasets.model_images(model, x, "x")
    model.label_codes(labels, len(x))
    gaussian = model.has_bound and isinstance(model.prior, tfp.distributions.MultivariateNormalDiag)
    means, kls = [], []
    for start in range(0, len(x), batch_size):
        q = model.encode(x[start:start + batch_size],
                         None if labels is None else labels[start:start + batch_size])
        means.append(q.mean().numpy())
        if gaussian and isinstance(q, tfp.distributions.MultivariateNormalDiag):
            kls.append(estimators.kl_per_dimension(q, model.prior).numpy())
    variance = np.var(np.concatenate(means), axis=0)
    return {"active_units": int(np.sum(variance > ACTIVE_UNIT_VARIANCE)),
            "mean_variance": variance,
            "kl_per_dimension": np.concatenate(kls).mean(axis=0) if kls else None}


def reconstruction_errors(model, x, mean_image, batch_size=500, labels=None):
    """How much better ``model`` reconstructs the images ``x`` than ``mean_image`` (the training
    set's mean) predicts them, for a model with an encoder.

    Returns ``reconstruction`` and ``mean_image``, the mean squared error per value of
    ``model.reconstruct(x)`` and of ``mean_image``, and ``grey``: whether the first is at least
    ``GREY_RATIO`` times the second.
    """
    x = datasets.model_images(model, x, "x")
    model.label_codes(labels, len(x))
    squared = 0.0
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        codes = None if labels is None else labels[start:start + batch_size]
        squared += float(np.sum((np.asarray(model.reconstruct(batch, codes)) - batch) ** 2))
    reconstruction = squared / x.size
    baseline = float(np.mean((x - np.asarray(mean_image, np.float32)) ** 2))
    return {"reconstruction": reconstruction, "mean_image": baseline,
            "grey": reconstruction >= GREY_RATIO * baseline}
