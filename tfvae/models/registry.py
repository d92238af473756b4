"""The model registry: name -> model class, for ``tfvae train --model``, ``load_model`` and
Keras's serialization."""

import keras

from tfvae.registry import Registry

# Every model module registers itself when imported (``tfvae.models`` imports them all).
MODELS = Registry("--model")


def register(name):
    """Register a model class under ``name`` for ``tfvae train --model``, ``load_model`` and
    Keras's serialization (as ``tfvae>ClassName``)."""
    def decorate(cls):
        MODELS.register(name)(keras.saving.register_keras_serializable(package="tfvae")(cls))
        cls.registry_name = name
        return cls
    return decorate
