"""tfvae: Auto-Encoding Variational Bayes (Kingma & Welling, 2013) on TensorFlow and Keras 3.

The public names load TensorFlow on first use, not on ``import tfvae``, so the command line can
parse its arguments (and answer ``--help``) without waiting for TensorFlow.
"""

import importlib
import os

# TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) is noise to users.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfvae.errors import InputError  # noqa: E402

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "VAE": "tfvae.models",
    "Autoencoder": "tfvae.models",
    "WakeSleep": "tfvae.models",
    "MCEM": "tfvae.models",
    "LatentVariableModel": "tfvae.models",
    "load_dataset": "tfvae.data",
    "train": "tfvae.training",
    "RunDirectory": "tfvae.runs",
    "load_run": "tfvae.runs",
    "export_model": "tfvae.export",
    "classifier_from_encoder": "tfvae.features",
    "log_likelihood": "tfvae.likelihood",
}

__all__ = ["InputError", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfvae' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
