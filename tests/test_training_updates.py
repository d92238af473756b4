"""The controls of each update: skipping steps whose gradient norm is too large (``skip_norm``)
and the moving average of the weights (``ema``), checked against the updates worked out by hand,
the same from Python and the command line, kept in config.json and continued exactly by a
resume."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from test_fast_training import TINY
from tfvae import VAE
from tfvae.errors import InputError
from tfvae.runs import RunDirectory
from tfvae.training.averaging import averaged_weights, averaging_optimizer
from tfvae.training.optimizers import make_optimizer
from tfvae.training.pipeline import train

RATE = 0.1


def _model(optimizer, skip_norm=None):
    keras.utils.set_random_seed(0)
    model = VAE(latent_dim=2, hidden=4, seed=0)
    model.compile(optimizer=optimizer)
    model.optimizer.build(model.trainable_variables)
    model.skip_norm = skip_norm
    return model


def _gradients(model, norm):
    """Gradients of the same value everywhere whose global norm is ``norm``."""
    count = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    return [tf.fill(v.shape, np.float32(norm / np.sqrt(count))) for v in model.trainable_variables]


def _values(variables):
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


# -- skipping steps --------------------------------------------------------------------------

@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_step_above_the_norm_or_not_finite_leaves_weights_and_optimizer_as_they_were(
        jit_compile):
    model = _model(keras.optimizers.SGD(RATE), skip_norm=1.0)
    start = _values(model.trainable_variables)
    step = tf.function(lambda grads: model.apply_update(grads, model.trainable_variables),
                       jit_compile=jit_compile)
    norms = [0.5, 2.0, np.inf, np.nan, 0.9, 1.01]
    applied = [n for n in norms if n <= 1.0]
    for norm in norms:
        step(_gradients(model, norm))
    # Plain SGD: w = w0 - rate * the sum of the gradients applied.
    for w, w0, g in zip(model.trainable_variables, start, _gradients(model, sum(applied))):
        np.testing.assert_allclose(w.numpy(), w0 - RATE * g.numpy(), rtol=1e-5, atol=1e-7)
    assert float(model.skip_tracker.result()) == len(norms) - len(applied)
    assert int(model.optimizer.iterations.numpy()) == len(norms)  # skipped steps count as steps


def test_a_skipped_step_leaves_adams_moments_as_they_were():
    model = _model(keras.optimizers.Adam(RATE), skip_norm=1.0)
    model.apply_update(_gradients(model, 0.5), model.trainable_variables)
    slots = [v for v in model.optimizer.variables if v is not model.optimizer.iterations]
    before = _values(slots)
    model.apply_update(_gradients(model, 3.0), model.trainable_variables)
    for a, b in zip(before, _values(slots)):
        np.testing.assert_array_equal(a, b)
    assert float(model.skip_tracker.result()) == 1


def test_train_counts_the_skipped_steps_of_each_epoch_and_a_resume_goes_on_skipping(tmp_path):
    steps = 3  # 300 examples in batches of 100
    train(tmp_path / "run", epochs=1, skip_norm=1e-6, **TINY)
    run = RunDirectory(tmp_path / "run")
    after_one = run.load_model("last").get_weights()
    resumed = train(tmp_path / "run", epochs=2, resume=True, verbose=0)
    assert resumed.config["train"]["skip_norm"] == 1e-6
    assert [row["skipped_steps"] for row in run.read_metrics()] == [steps, steps]
    # Every update was skipped: epoch 2 left the weights where epoch 1 did.
    for a, b in zip(after_one, run.load_model("last").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(resumed.model.optimizer.iterations.numpy()) == 2 * steps
    # A norm no step reaches trains as without skipping, bit for bit, and counts none.
    plain = train(tmp_path / "plain", epochs=1, **TINY)
    never = train(tmp_path / "never", epochs=1, skip_norm=1e30, **TINY)
    assert never.metrics["skipped_steps"] == 0 and plain.metrics["skipped_steps"] is None
    for a, b in zip(plain.model.get_weights(), never.model.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- the moving average ----------------------------------------------------------------------

def test_the_average_follows_its_recurrence_over_sgd_with_momentum():
    decay, momentum = 0.8, 0.9
    model = _model(make_optimizer("sgd", RATE, ema=decay))
    assert model.optimizer.momentum == momentum
    weights = _values(model.trainable_variables)
    velocity = [np.zeros_like(w) for w in weights]
    average = None
    for norm in (1.0, 0.5, 2.0, 0.25):
        grads = _gradients(model, norm)
        model.apply_update(grads, model.trainable_variables)
        # Keras's SGD: v = momentum v - rate g; w = w + v. The average starts at w_1.
        velocity = [momentum * v - RATE * g.numpy() for v, g in zip(velocity, grads)]
        weights = [w + v for w, v in zip(weights, velocity)]
        average = (weights if average is None
                   else [decay * a + (1 - decay) * w for a, w in zip(average, weights)])
    for a, b in zip(average, _values(averaging_optimizer(model)._model_variables_moving_average)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    trained = _values(model.trainable_variables)
    with averaged_weights(model):
        for a, b in zip(average, _values(model.trainable_variables)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    for a, b in zip(trained, _values(model.trainable_variables)):  # put back exactly
        np.testing.assert_array_equal(a, b)


def test_a_skipped_first_step_starts_the_average_at_the_weights():
    decay = 0.8
    model = _model(keras.optimizers.SGD(RATE, use_ema=True, ema_momentum=decay), skip_norm=1.0)
    start = _values(model.trainable_variables)
    for norm in (2.0, 0.5):  # skipped, then applied
        model.apply_update(_gradients(model, norm), model.trainable_variables)
    averages = _values(averaging_optimizer(model)._model_variables_moving_average)
    for a, w0, w1 in zip(averages, start, _values(model.trainable_variables)):
        np.testing.assert_allclose(a, decay * w0 + (1 - decay) * w1, rtol=1e-5, atol=1e-7)


class SeenWeights(keras.callbacks.Callback):
    """The weights after the last training step of each epoch, and those its test pass uses."""

    def __init__(self):
        super().__init__()
        self.trained, self.tested, self.averages, self.after_test = [], [], [], []

    def on_train_batch_end(self, batch, logs=None):
        self.last = self.model.get_weights()

    def on_test_begin(self, logs=None):
        self.trained.append(self.last)
        self.tested.append(self.model.get_weights())
        self.averages.append(_values(averaging_optimizer(self.model)
                                     ._model_variables_moving_average))

    def on_test_end(self, logs=None):
        self.after_test.append(self.model.get_weights())


def test_the_test_pass_and_the_runs_model_use_the_average_and_a_resume_continues_it(tmp_path):
    settings = {**TINY, "ema": 0.9}
    seen = SeenWeights()
    whole = train(tmp_path / "whole", epochs=4, callbacks=[seen], **settings)
    for trained, tested, averages, after in zip(seen.trained, seen.tested, seen.averages,
                                                seen.after_test):
        for t, s, a, r in zip(trained, tested, averages, after):
            np.testing.assert_array_equal(s, a)  # tested with the average
            np.testing.assert_array_equal(r, t)  # and the trained weights put back exactly
        assert any(not np.array_equal(t, s) for t, s in zip(trained, tested))
    run = RunDirectory(tmp_path / "whole")
    last = run.load_model("last")
    averages = _values(averaging_optimizer(last)._model_variables_moving_average)
    for a, b, c in zip(averages, run.load_model("model").get_weights(),
                       whole.model.get_weights()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    for a, b in zip(last.get_weights(), seen.trained[-1]):  # last.keras: the trained weights
        np.testing.assert_array_equal(a, b)
    best = run.read_state()["best_test_elbo"]
    best_epoch = [r["epoch"] for r in run.read_metrics() if r["test_elbo"] == best][0]
    for a, b in zip(seen.averages[int(best_epoch) - 1], run.load_model("best").get_weights()):
        np.testing.assert_array_equal(a, b)
    # Two epochs, then two more on resume: the same average as four at once.
    train(tmp_path / "parts", epochs=2, **settings)
    resumed = train(tmp_path / "parts", epochs=4, resume=True, verbose=0)
    assert resumed.config["train"]["ema"] == 0.9
    parts = RunDirectory(tmp_path / "parts").load_model("last")
    for a, b in zip(averages, _values(averaging_optimizer(parts)._model_variables_moving_average)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for a, b in zip(whole.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    a, b = (RunDirectory(tmp_path / name).read_metrics()[3] for name in ("whole", "parts"))
    assert a["test_elbo"] == pytest.approx(b["test_elbo"], rel=1e-5)


def test_a_run_much_shorter_than_the_averages_horizon_warns_with_a_decay_that_fits(tmp_path,
                                                                                  capsys):
    # 300 examples in batches of 100, 2 epochs: 6 steps. With decay 0.9 the first step keeps
    # 0.9^5 = 59% of the average; with 0.5, 3%.
    train(tmp_path / "short", epochs=2, **{**TINY, "ema": 0.9})
    err = capsys.readouterr().err
    assert ("after 6 steps the moving average of the weights (ema=0.9) still gives 59% of its "
            "weight to the first step's weights") in err, err
    assert "a run this short wants no ema" in err, err
    assert "still gives 59%" in (tmp_path / "short" / "train.log").read_text()
    train(tmp_path / "fits", epochs=2, **{**TINY, "ema": 0.5})
    assert "moving average" not in capsys.readouterr().err


def test_the_advice_is_a_decay_whose_share_after_the_runs_steps_is_small():
    from tfvae.errors import render
    from tfvae.training.averaging import FIRST_WEIGHTS_SHARE, short_average

    class Averaging:
        def __init__(self, steps, decay):
            self.iterations, self.ema_momentum = tf.constant(steps), decay

    for steps, decay, advised in [(1_200, 0.9999, 0.99), (20_000, 0.9999, 0.999),
                                  (60, 0.99, 0.9)]:
        line = render(short_average(Averaging(steps, decay)))
        assert f"still gives {decay ** (steps - 1):.0%}" in line
        assert f"a decay such as ema={advised}" in line, line
        assert advised ** (steps - 1) < FIRST_WEIGHTS_SHARE
    assert short_average(Averaging(20_000, 0.999)) is None  # 0.999^19999: 2e-9


# -- from the command line, and refused ----------------------------------------------------------

def test_the_cli_trains_with_both_and_records_them(tmp_path):
    from tfvae.cli import main

    run_dir = tmp_path / "run"
    assert main(["train", "--out", str(run_dir), "--train-examples", "300", "--test-examples",
                 "100", "--hidden", "16", "--latent-dim", "3", "--epochs", "1", "--quiet",
                 "--skip-norm", "1e-6", "--ema", "0.5"]) == 0
    run = RunDirectory(run_dir)
    config = run.read_config()["train"]
    assert (config["skip_norm"], config["ema"]) == (1e-6, 0.5)
    assert run.read_metrics()[0]["skipped_steps"] == 3
    assert averaging_optimizer(run.load_model("last")).ema_momentum == 0.5


@pytest.mark.parametrize("argument, value, expected", [
    ("ema", 1.0, "a finite number > 0 and < 1"),
    ("ema", 0, "a finite number > 0 and < 1"),
    ("skip_norm", -1.0, "a finite number > 0"),
])
def test_bad_values_are_refused_naming_them_before_writing(tmp_path, argument, value, expected):
    with pytest.raises(InputError, match=f"^{argument}: expected {expected}, got"):
        train(tmp_path / "run", **{argument: value})
    assert not (tmp_path / "run").exists()


def test_an_optimizer_object_keeps_its_own_average_and_skip_norm_needs_one_device(tmp_path):
    with pytest.raises(InputError, match="^ema: expected none with an optimizer object"):
        train(tmp_path / "run", optimizer=keras.optimizers.SGD(0.1), ema=0.9)
    with pytest.raises(InputError, match="^skip_norm: expected none under a tf.distribute"):
        train(tmp_path / "run", skip_norm=1.0, strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert not (tmp_path / "run").exists()
