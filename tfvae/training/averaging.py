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
"""

import contextlib

import keras


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


class AveragedEvaluation(keras.callbacks.Callback):
    """The test pass of each epoch (``fit``'s validation) with the averaged weights."""

    held = None

    def on_test_begin(self, logs=None):
        self.held = averaged_weights(self.model)
        self.held.__enter__()

    def on_test_end(self, logs=None):
        if self.held is not None:
            self.held.__exit__(None, None, None)
            self.held = None
