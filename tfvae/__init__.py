"""tfvae: Auto-Encoding Variational Bayes (Kingma & Welling, 2013) on TensorFlow and Keras 3.

``import tfvae`` registers every serializable class with Keras (so ``keras.saving.load_model``
reads any tfvae ``.keras`` file) and makes the public names and submodules reachable as
attributes. The ``tfvae`` command itself loads TensorFlow only when a command needs it, so it
parses its arguments (and answers ``--help``) at once.
"""

import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) is noise to users.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfvae.errors import InputError  # noqa: E402
from tfvae.lazy import MovedModules, lazy_names  # noqa: E402

__version__ = "0.1.0"

# public name -> the module that defines it
_NAMES = {
    "VAE": "tfvae.models",
    "Autoencoder": "tfvae.models",
    "WakeSleep": "tfvae.models",
    "MCEM": "tfvae.models",
    "LatentVariableModel": "tfvae.models",
    "load_dataset": "tfvae.data",
    "train": "tfvae.training",
    "tune": "tfvae.training.search",
    "RunDirectory": "tfvae.runs",
    "load_run": "tfvae.runs",
    "export_model": "tfvae.export",
    "classifier_from_encoder": "tfvae.applications.features",
    "log_likelihood": "tfvae.evaluation",
    "score": "tfvae.evaluation",
    "calibrate_threshold": "tfvae.evaluation",
    "impute": "tfvae.applications.imputation",
}
_SUBMODULES = ("applications", "checks", "cli", "data", "errors", "estimators", "evaluation",
               "export", "images", "interruption", "layers", "models", "noise", "options",
               "paper", "readers", "runs", "storage", "training")
# Module names of the earlier flat layout -> where their code lives now.
_MOVED = {
    "tfvae.execution": "tfvae.training.execution",
    "tfvae.distribute": "tfvae.training.distribute",
    "tfvae.machine": "tfvae.training.machine",
    "tfvae.summaries": "tfvae.training.summaries",
    "tfvae.runtimes": "tfvae.export.runtimes",
    "tfvae.warmup": "tfvae.export.warmup",
    "tfvae.serving": "tfvae.export.client",
    "tfvae.features": "tfvae.applications.features",
    "tfvae.synthesis": "tfvae.applications.synthesis",
    "tfvae.compression": "tfvae.applications.compression",
    "tfvae.projector": "tfvae.applications.projector",
    "tfvae.files": "tfvae.applications.inputs",
    "tfvae.likelihood": "tfvae.evaluation.likelihood",
    "tfvae.baselines": "tfvae.models",
    "tfvae.datasets": "tfvae.data.packaged",
    "tfvae.models.networks": "tfvae.layers.bodies",
    "tfvae.models.distributions": "tfvae.layers.likelihoods",
    "tfvae.models.coders": "tfvae.layers.coders",
    "tfvae.models.priors": "tfvae.layers.priors",
    "tfvae.models.flows": "tfvae.layers.flows",
    "tfvae.models.hierarchy": "tfvae.layers.hierarchy",
}
sys.meta_path.append(MovedModules(_MOVED))

__all__ = ["InputError", "__version__", *_NAMES]
__getattr__, __dir__ = lazy_names(__name__, _NAMES,
                                  (*_SUBMODULES, *(m.split(".")[1] for m in _MOVED
                                                   if m.count(".") == 1)))


def _started_as_command():
    """Whether this process is the ``tfvae`` command (its console script, or ``python -m tfvae``
    while the package is being found)."""
    return os.path.basename(sys.argv[0] if sys.argv else "") in ("tfvae", "-m")


if not _started_as_command():
    import tfvae.models  # noqa: E402

    tfvae.models.register_builtins()  # Keras then loads every tfvae model and layer
