"""tfvae's latent-variable models, one module each, and the registry of their names.

Every model extends :class:`tfvae.models.base.LatentVariableModel` and registers itself with
``@register(name)``; :func:`model_class` and :func:`load_model` are how training, export, the
paper's experiments and the CLI find them.
"""

from tfvae.models.autoencoder import Autoencoder
from tfvae.models.base import LatentVariableModel
from tfvae.models.mcem import MCEM
from tfvae.models.registry import MODELS, register
from tfvae.models.vae import VAE
from tfvae.models.wake_sleep import WakeSleep

__all__ = ["MODELS", "MCEM", "VAE", "Autoencoder", "LatentVariableModel", "WakeSleep",
           "load_model", "model_class", "register"]


def model_class(name):
    """The model class registered as ``name`` (``--model``)."""
    return MODELS.get(name, "--model")


def load_model(path, argument="RUN_DIR"):
    """A model saved by ``model.save`` (a ``.keras`` file), every tfvae model class known; a
    file Keras cannot load (in safe mode) raises InputError naming it."""
    from tfvae.readers import load_keras

    return load_keras(path, argument)
