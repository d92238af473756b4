"""The model registry: name -> model class, for ``tfvae train --model``, ``load_model`` and
Keras's serialization."""

from tfvae.registry import Registry

# The built-in models, by the module that registers each when imported (``tfvae.models``
# imports them all); listing them imports no TensorFlow.
MODELS = Registry("model", {
    "vae": "tfvae.models.vae:VAE",
    "autoencoder": "tfvae.models.autoencoder:Autoencoder",
    "wake_sleep": "tfvae.models.wake_sleep:WakeSleep",
    "mcem": "tfvae.models.mcem:MCEM",
})


def register(name):
    """Register a model class under ``name`` for ``tfvae train --model``, ``load_model`` and
    Keras's serialization (as ``tfvae>ClassName``)."""
    import keras

    def decorate(cls):
        MODELS.register(name)(keras.saving.register_keras_serializable(package="tfvae")(cls))
        cls.registry_name = name
        return cls
    return decorate
