"""The learning-rate schedules of ``learning_rate_schedule``, each a function of the epoch that the
optimizer's step count is in, times an optional linear warm-up.

They are Keras ``LearningRateSchedule`` objects registered with Keras, so a checkpoint's
optimizer saves and reloads them with its step count: a resumed run continues at the same rate at
the same step.
"""

import math

import keras
from keras import ops


class EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``learning_rate`` times :meth:`decay` of the (fractional) epoch the step is in, times a
    warm-up that rises linearly from 0 over ``warmup_epochs``; ``epochs`` is the run's total."""

    def __init__(self, learning_rate, steps_per_epoch, epochs, warmup_epochs=0):
        self.learning_rate = float(learning_rate)
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)
        self.warmup_epochs = int(warmup_epochs)

    def decay(self, epoch):
        """The share of ``learning_rate`` at ``epoch`` (a float tensor); constant: 1."""
        return ops.ones_like(epoch)

    def __call__(self, step):
        epoch = ops.cast(step, "float32") / self.steps_per_epoch
        rate = self.learning_rate * self.decay(epoch)
        if self.warmup_epochs:
            rate = rate * ops.minimum(1.0, epoch / self.warmup_epochs)
        return rate

    def get_config(self):
        return {"learning_rate": self.learning_rate, "steps_per_epoch": self.steps_per_epoch,
                "epochs": self.epochs, "warmup_epochs": self.warmup_epochs}


@keras.saving.register_keras_serializable(package="tfvae")
class ConstantSchedule(EpochSchedule):
    """The rate itself (with a warm-up: a plain float rate has none)."""


@keras.saving.register_keras_serializable(package="tfvae")
class ExponentialSchedule(EpochSchedule):
    """A rate that falls smoothly by 10x over the run's epochs."""

    def decay(self, epoch):
        return ops.power(10.0, -epoch / self.epochs)


@keras.saving.register_keras_serializable(package="tfvae")
class CosineSchedule(EpochSchedule):
    """Half a cosine from the rate down to 0 at the end of the run's last epoch."""

    def decay(self, epoch):
        return 0.5 * (1.0 + ops.cos(math.pi * ops.minimum(epoch / self.epochs, 1.0)))


# The first epoch of each of the IWAE schedule's stages i = 1..7: stage i lasts 3^i epochs.
IWAE_STAGE_STARTS = tuple(sum(3 ** j for j in range(i)) for i in range(1, 8))  # 1, 4, 13, ...


@keras.saving.register_keras_serializable(package="tfvae")
class IWAESchedule(EpochSchedule):
    """Burda et al. (2015), section 5: 3^i passes over the data at the rate times 10^(-i/7) for
    i = 0..7, and the last rate from then on (the paper's rate is 0.001 with Adam). The rate
    changes only where an epoch begins."""

    def decay(self, epoch):
        whole = ops.floor(epoch)
        stage = sum(ops.cast(whole >= start, "float32") for start in IWAE_STAGE_STARTS)
        return ops.power(10.0, -stage / 7.0)


SCHEDULES = {"constant": ConstantSchedule, "exponential": ExponentialSchedule,
             "iwae": IWAESchedule, "cosine": CosineSchedule}


def learning_rate_of(name, learning_rate, steps_per_epoch, epochs, warmup_epochs=0):
    """The optimizer's ``learning_rate`` for schedule ``name``: a plain float for a constant
    rate without warm-up (as runs before schedules had), else an :class:`EpochSchedule`."""
    if name == "constant" and not warmup_epochs:
        return learning_rate
    return SCHEDULES[name](learning_rate, steps_per_epoch, epochs, warmup_epochs)
