"""The optimizers users choose by name, and the step count a checkpoint's optimizer holds."""

import keras
import tensorflow as tf

from tfvae import options
from tfvae.checks import check_choice, check_number


def make_optimizer(name, learning_rate):
    """A fresh Keras optimizer ``name`` (``tfvae.options.OPTIMIZERS``) at ``learning_rate``."""
    check_choice("optimizer", name, options.OPTIMIZERS)
    learning_rate = check_number("learning_rate", learning_rate, above=0)
    if name == "adagrad":
        return keras.optimizers.Adagrad(learning_rate)
    return keras.optimizers.Adam(learning_rate)


def optimizer_steps(model):
    """The optimizer's step count as an int (also for a variable mirrored by tf.distribute)."""
    return int(tf.convert_to_tensor(model.optimizer.iterations.value))
