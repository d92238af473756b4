"""The exponential moving average of the weights (``ema``), kept by the Keras optimizer itself
(``use_ema``, ``ema_momentum``): after the optimizer's step t, ``average = w_1`` at t = 1 and
``average = decay * average + (1 - decay) * w_t`` after. The averages are optimizer variables,
so a checkpoint holds them and a resume continues them exactly.

What a run does with them: the test pass of each epoch (its bound in metrics.csv picks the best
epoch), the latent diagnostics and TensorBoard's images use the averaged weights; best.keras and
model.keras hold them as the model's weights (what ``evaluate``, ``export`` and every command
that reads the run's model use); last.keras holds the weights as trained, which a resume goes on
from. Keras's own ``SwapEMAWeights`` swaps by adding and subtracting, which changes the trained
weights by rounding: here they are copied aside and put back as they were.

A run much shorter than the average's horizon, 1 / (1 - decay) steps, ends with an average that
still holds much of its first weights (VDVAE's decay 0.9999 over the 1,200 steps of a
ten-minute run: 89%): at the end of training a warning says so when the first step's weights
keep more than ``FIRST_WEIGHTS_SHARE`` of the average.
"""

import contextlib
import math
import sys

import keras

from tfvae.errors import arg, render

# The first step's share of the average above which the end of training warns.
FIRST_WEIGHTS_SHARE = 0.05


def averaging_optimizer(model):
    """The optimizer of ``model`` that keeps a moving average of its weights, once built; None
    without one (the inner optimizer of a LossScaleOptimizer is the one that keeps it)."""
    optimizer = getattr(model, "optimizer", None)
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    if getattr(optimizer, "use_ema", False) and optimizer.built:
        return optimizer
    return None


@contextlib.contextmanager
def averaged_weights(model):
    """Inside, the trainable weights of ``model`` are their moving averages; after, exactly the
    weights they were (nothing changes for a model without averages)."""
    optimizer = averaging_optimizer(model)
    if optimizer is None:
        yield
        return
    variables = optimizer._trainable_variables
    kept = [keras.ops.convert_to_numpy(v) for v in variables]
    for variable, average in zip(variables, optimizer._model_variables_moving_average):
        variable.assign(keras.ops.convert_to_numpy(average))
    try:
        yield
    finally:
        for variable, value in zip(variables, kept):
            variable.assign(value)


def short_average(optimizer):
    """A warning (a line) when, after the optimizer's steps so far, the first step's weights
    keep more than ``FIRST_WEIGHTS_SHARE`` of the average (``decay^(steps - 1)``); else None."""
    steps, decay = int(optimizer.iterations.numpy()), float(optimizer.ema_momentum)
    share = decay ** max(steps - 1, 0)
    if share <= FIRST_WEIGHTS_SHARE:
        return None
    # A decay of the form 1 - 10^-k whose first-step share after these steps is below the limit.
    horizon = 10 ** math.floor(math.log10(max(steps, 1) / -math.log(FIRST_WEIGHTS_SHARE)))
    advice = (f"a decay such as {arg('ema', 1 - 1 / horizon)}" if horizon >= 10
              else f"no {arg('ema')}")
    return (f"warning: after {steps:,} steps the moving average of the weights "
            f"({arg('ema', decay)}) still gives {share:.0%} of its weight to the first step's "
            f"weights, and the test bound, evaluate and export use the average: a run this "
            f"short wants {advice} (its horizon, 1 / (1 - decay) steps, well under the run's)")


class AveragedEvaluation(keras.callbacks.Callback):
    """The test pass of each epoch (``fit``'s validation) with the averaged weights; at the end
    of training, :func:`short_average`'s warning on stderr and in ``run``'s train.log."""

    held = None

    def __init__(self, run=None):
        super().__init__()
        self.run = run

    def on_test_begin(self, logs=None):
        self.held = averaged_weights(self.model)
        self.held.__enter__()

    def on_test_end(self, logs=None):
        if self.held is not None:
            self.held.__exit__(None, None, None)
            self.held = None

    def on_train_end(self, logs=None):
        optimizer = averaging_optimizer(self.model)
        line = optimizer is not None and short_average(optimizer)
        if line:
            if self.run is not None:
                self.run.append_log(line)
            print(render(f"tfvae: {line}"), file=sys.stderr)
