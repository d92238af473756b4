"""Evaluating a trained model on data: the ELBO, and fixed binary data for log p(x)."""

import numpy as np

from tfvae import data as datasets


def evaluate_elbo(model, x, batch_size=500, dynamic_binarize=False, seed=0):
    """Mean per-example ``elbo``, ``reconstruction`` and ``kl`` (nats) of ``model`` on ``x``;
    an autoencoder gives ``reconstruction`` alone."""
    pipeline = datasets.make_pipeline(x, batch_size=batch_size,
                                      dynamic_binarize=dynamic_binarize, seed=seed)
    logs = model.evaluate(pipeline, verbose=0, return_dict=True)
    return {k: float(logs[k]) for k in ("elbo", "reconstruction", "kl") if k in logs}


def binarize_once(x, seed=0):
    """One fixed Bernoulli sample of grey levels ``x`` in [0, 1] (float32, same shape).

    log p(x) is a property of fixed data: a split trained with dynamic binarization is
    binarized once, reproducibly, before its log-likelihood is estimated.
    """
    rng = np.random.default_rng(seed)
    return (rng.random(np.shape(x), dtype=np.float32) < x).astype(np.float32)
