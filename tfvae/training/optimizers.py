"""The optimizers users choose by name (or give as Keras objects), with their learning-rate
schedule, gradient clipping and moving average of the weights, and the step count a checkpoint's optimizer holds."""

import keras
import tensorflow as tf

from tfvae import options
from tfvae.checks import check_choice, check_number
from tfvae.training.schedules import learning_rate_of


class _FusedAdamStep:
    """Adam's update of one variable as TensorFlow's fused kernel (``ResourceApplyAdam``), by the
    formula of Keras's Adam. Keras writes that update as about 40 ops per variable, each traced
    with the training step and run at every step: without XLA, an eighth of the ReLU MLP's step
    on a CPU (``benchmarks/README.md``, the eighth sitting)."""

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if not self.amsgrad:
            # The step size with both bias corrections, once a step for every variable (the
            # kernel's own correction is then 1: it is given beta powers of 0).
            step = tf.cast(self.iterations + 1, tf.float32)
            learning_rate = (tf.cast(learning_rate, tf.float32) * tf.sqrt(1 - self.beta_2**step)
                             / (1 - self.beta_1**step))
        super()._backend_update_step(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle, beta1_power=0.0, beta2_power=0.0,
            lr=learning_rate, beta1=self.beta_1, beta2=self.beta_2, epsilon=self.epsilon,
            grad=tf.cast(tf.convert_to_tensor(gradient), variable.dtype))


@keras.saving.register_keras_serializable(package="tfvae")
class FusedAdam(_FusedAdamStep, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` (the same arguments and numbers), one kernel per variable."""


@keras.saving.register_keras_serializable(package="tfvae")
class FusedAdamW(_FusedAdamStep, keras.optimizers.AdamW):
    """``keras.optimizers.AdamW``, one kernel per variable (the decay is Keras's own step)."""


# The optimizers by name; SGD with the momentum practitioners expect of it.
_OPTIMIZERS = {
    "adagrad": keras.optimizers.Adagrad,
    "adam": FusedAdam,
    "adamw": FusedAdamW,
    "adamax": keras.optimizers.Adamax,
    "sgd": lambda learning_rate, **kwargs: keras.optimizers.SGD(learning_rate, momentum=0.9,
                                                                 **kwargs),
}


def make_optimizer(name, learning_rate, *, schedule="constant", steps_per_epoch=1, epochs=1,
                   warmup_epochs=0, clip_norm=None, ema=None):
    """A fresh Keras optimizer ``name`` (``tfvae.options.OPTIMIZERS``) at ``learning_rate``,
    which follows ``schedule`` (``tfvae.options.LEARNING_RATE_SCHEDULES``) over ``epochs`` of
    ``steps_per_epoch`` steps after a linear warm-up of ``warmup_epochs``; ``clip_norm`` clips
    each step's gradients to that global norm; ``ema`` (a decay in (0, 1)) keeps a moving
    average of the weights (``tfvae.training.averaging``)."""
    check_choice("optimizer", name, options.OPTIMIZERS)
    learning_rate = check_number("learning_rate", learning_rate, above=0)
    check_choice("learning_rate_schedule", schedule, options.LEARNING_RATE_SCHEDULES)
    rate = learning_rate_of(schedule, learning_rate, steps_per_epoch, epochs, warmup_epochs)
    average = {} if ema is None else {"use_ema": True,
                                      "ema_momentum": check_number("ema", ema, above=0, below=1)}
    return _OPTIMIZERS[name](learning_rate=rate, global_clipnorm=clip_norm, **average)


def run_optimizer(train_config, steps_per_epoch, given=None):
    """The optimizer of a new run from config.json's ``train`` section, or a copy of the Keras
    optimizer object ``given`` (a copy: the caller's object is not built on another model)."""
    if given is not None:
        return type(given).from_config(given.get_config())
    return make_optimizer(train_config["optimizer"], train_config["learning_rate"],
                          schedule=train_config["learning_rate_schedule"],
                          steps_per_epoch=steps_per_epoch, epochs=train_config["epochs"],
                          warmup_epochs=train_config["learning_rate_warmup_epochs"],
                          clip_norm=train_config["clip_norm"], ema=train_config.get("ema"))


def optimizer_record(optimizer):
    """How config.json records a Keras optimizer object given to ``train``: its class name and
    config."""
    return {"class_name": type(optimizer).__name__,
            "config": keras.saving.serialize_keras_object(optimizer)["config"]}


def optimizer_steps(model):
    """The optimizer's step count as an int (also for a variable mirrored by tf.distribute)."""
    return int(tf.convert_to_tensor(model.optimizer.iterations.value))


def stretch_schedule(optimizer, epochs):
    """Make the learning-rate schedule of a resumed run's ``optimizer`` span the run's new total
    of ``epochs`` (an exponential or cosine decay then ends where the longer run ends); a run
    resumed with the same total keeps its schedule, and so its rates, exactly."""
    from tfvae.training.schedules import EpochSchedule

    rate = optimizer.get_config()["learning_rate"]
    if not isinstance(rate, dict):  # a plain rate
        return
    schedule = keras.optimizers.schedules.deserialize(rate)
    if isinstance(schedule, EpochSchedule) and schedule.epochs != epochs:
        optimizer.learning_rate = type(schedule)(**{**schedule.get_config(), "epochs": epochs})
