"""Evaluating a trained model on data: the mean ELBO (or reconstruction) over a split."""

from tfvae import data as datasets


def evaluate_elbo(model, x, batch_size=500, dynamic_binarize=False, seed=0):
    """Mean per-example ``elbo``, ``reconstruction`` and ``kl`` (nats) of ``model`` on ``x``;
    an autoencoder gives ``reconstruction`` alone."""
    x = datasets.model_images(model, x, "x")
    pipeline = datasets.make_pipeline(x, batch_size=batch_size,
                                      dynamic_binarize=dynamic_binarize, seed=seed)
    logs = model.evaluate(pipeline, verbose=0, return_dict=True)
    return {k: float(logs[k]) for k in ("elbo", "reconstruction", "kl") if k in logs}
