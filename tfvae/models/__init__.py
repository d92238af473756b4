"""tfvae's latent-variable models, one module each, and the registry of their names.

Every model extends :class:`tfvae.models.base.LatentVariableModel` and registers itself with
``@register(name)``; :func:`model_class` and :func:`load_model` are how training, export, the
paper's experiments and the CLI find them.
"""

import importlib

from tfvae.lazy import lazy_names
from tfvae.models.registry import MODELS, register

_NAMES = {"VAE": "tfvae.models.vae", "Autoencoder": "tfvae.models.autoencoder",
          "WakeSleep": "tfvae.models.wake_sleep", "MCEM": "tfvae.models.mcem",
          "LatentVariableModel": "tfvae.models.base"}
__all__ = ["MODELS", *_NAMES, "load_model", "model_class", "register", "register_builtins"]
# Listing the models imports no TensorFlow, so the command line's --help stays fast.
__getattr__, __dir__ = lazy_names(__name__, _NAMES, ("base", "registry", "settings", "vae",
                                                     "vae_checks", "autoencoder", "wake_sleep",
                                                     "mcem"))


def register_builtins():
    """Import every built-in model, which registers it (and its layers) with Keras."""
    for name in MODELS.names():
        MODELS.get(name)
    # The optimizers and learning-rate schedules a checkpoint's optimizer may hold.
    importlib.import_module("tfvae.training.optimizers")


def model_class(name):
    """The model class registered as ``name`` (``--model``)."""
    return MODELS.get(name)


def load_model(path, argument="RUN_DIR"):
    """A model saved by ``model.save`` (a ``.keras`` file), every tfvae model class known; a
    file Keras cannot load (in safe mode) raises InputError naming it."""
    from tfvae.readers import load_keras

    register_builtins()
    return load_keras(path, argument)
