"""Scoring a trained model: log p(x) by importance sampling or HMC (``likelihood``), the bound
and the latent diagnostics (``diagnostics``: active units, KL per dimension), and anomaly scores
with their threshold (``scores``)."""

from tfvae.lazy import lazy_names

_NAMES = {"log_likelihood": "tfvae.evaluation.likelihood",
          "hmc_log_likelihood": "tfvae.evaluation.likelihood",
          "LogLikelihood": "tfvae.evaluation.likelihood",
          "evaluate_elbo": "tfvae.evaluation.diagnostics",
          "latent_diagnostics": "tfvae.evaluation.diagnostics",
          **{name: "tfvae.evaluation.scores" for name in ("score", "calibrate_threshold",
                                                          "Threshold")}}
__all__ = list(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES, ("likelihood", "diagnostics", "scores"))
