"""The training controls: optimizers by name or as objects, learning-rate schedules with warm-up,
gradient clipping and early stopping, the same from Python and the command line, kept in
config.json and continued exactly by a resume."""

import math

import keras
import numpy as np
import pytest

from conftest import run_cli
from test_fast_training import TINY
from tfvae.cli import build_parser
from tfvae.errors import InputError
from tfvae.models import load_model
from tfvae.runs import RunDirectory
from tfvae.training.optimizers import make_optimizer
from tfvae.training.pipeline import train
from tfvae.training.schedules import IWAE_STAGE_STARTS, learning_rate_of

STEPS, EPOCHS, RATE = 10, 20, 0.1


def rate_at(schedule, step):
    return float(schedule(step))


# -- the schedules against their formulas --------------------------------------------------

@pytest.mark.parametrize("name, formula", [
    ("constant", lambda epoch: RATE),
    ("exponential", lambda epoch: RATE * 10 ** (-epoch / EPOCHS)),
    ("cosine", lambda epoch: RATE * 0.5 * (1 + math.cos(math.pi * min(epoch / EPOCHS, 1)))),
    # Stage i (rate times 10^(-i/7)) begins after 1 + 3 + ... + 3^(i-1) epochs, at most 7.
    ("iwae", lambda epoch: RATE * 10 ** (-sum(math.floor(epoch) >= (3 ** i - 1) // 2
                                              for i in range(1, 8)) / 7)),
])
@pytest.mark.parametrize("warmup_epochs", [0, 3])
def test_each_schedule_gives_its_formulas_rate(name, formula, warmup_epochs):
    schedule = learning_rate_of(name, RATE, STEPS, EPOCHS, warmup_epochs)
    if name == "constant" and not warmup_epochs:
        assert schedule == RATE  # a plain rate, as runs before schedules had
        return
    # Saved with a checkpoint's optimizer and loaded back, it gives the same rates.
    reloaded = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule))
    for step in (0, 1, 5, 9, 10, 29, 39, 40, 100, 130, 199, 200, 3640, 33_000):
        epoch = step / STEPS
        warmup = min(1.0, epoch / warmup_epochs) if warmup_epochs else 1.0
        expected = formula(epoch) * warmup
        assert rate_at(schedule, step) == pytest.approx(expected, rel=1e-5, abs=1e-9), step
        assert rate_at(reloaded, step) == rate_at(schedule, step)


def test_the_iwae_schedule_changes_rate_where_its_stages_begin():
    assert IWAE_STAGE_STARTS == (1, 4, 13, 40, 121, 364, 1093)
    schedule = learning_rate_of("iwae", 1e-3, STEPS, EPOCHS)
    rates = [rate_at(schedule, epoch * STEPS) for epoch in range(0, 1200)]
    changes = [epoch for epoch in range(1, 1200) if rates[epoch] != rates[epoch - 1]]
    assert changes == list(IWAE_STAGE_STARTS)
    assert rate_at(schedule, 5000 * STEPS) == pytest.approx(1e-4)


@pytest.mark.parametrize("schedule", ["exponential", "iwae"])
def test_a_resumed_run_goes_on_at_the_rate_of_an_uninterrupted_one(tmp_path, schedule):
    settings = {**TINY, "learning_rate_schedule": schedule, "learning_rate_warmup_epochs": 1}
    whole = train(tmp_path / "whole", epochs=4, **settings)
    train(tmp_path / "parts", epochs=2, **settings)
    resumed = train(tmp_path / "parts", epochs=4, resume=True, verbose=0)
    steps = 4 * 3  # 300 examples in batches of 100
    for result in (whole, resumed):
        assert int(result.model.optimizer.iterations.numpy()) == steps
        assert result.config["train"]["learning_rate_schedule"] == schedule
        assert result.config["train"]["learning_rate_warmup_epochs"] == 1
    expected = {"exponential": 1e-3 / 10, "iwae": 1e-3 * 10 ** (-2 / 7)}[schedule]
    assert float(whole.model.optimizer.learning_rate) == pytest.approx(expected, rel=1e-5)
    assert float(resumed.model.optimizer.learning_rate) == pytest.approx(expected, rel=1e-5)
    # A resume with another schedule is refused: the run's rates are part of it.
    with pytest.raises(InputError, match="^learning_rate_schedule: expected"):
        train(tmp_path / "parts", epochs=5, resume=True, learning_rate_schedule="cosine")


# -- optimizers and clipping -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["adagrad", "adam", "adamw", "adamax", "sgd"])
def test_optimizers_by_name_clip_the_update_to_the_global_norm(name):
    weights = keras.Variable(np.zeros(5, "float32"))
    optimizer = make_optimizer(name, 0.1, clip_norm=1.0)
    assert optimizer.global_clipnorm == 1.0
    optimizer.apply_gradients([(np.full(5, 1e6, "float32"), weights)])
    change = float(np.linalg.norm(weights.numpy()))
    if name == "sgd":  # one step from rest: momentum adds nothing, the step is lr * clipped
        assert optimizer.momentum == 0.9
        assert change == pytest.approx(0.1 * 1.0, rel=1e-5)
    assert change < 1.0  # unclipped, SGD would move 0.1 * 2.2e6
    unclipped = keras.Variable(np.zeros(5, "float32"))
    keras.optimizers.SGD(0.1).apply_gradients([(np.full(5, 1e6, "float32"), unclipped)])
    assert float(np.linalg.norm(unclipped.numpy())) > 1e5



@pytest.mark.parametrize("name, keras_class", [("adam", keras.optimizers.Adam),
                                               ("adamw", keras.optimizers.AdamW)])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_adam_by_name_takes_keras_adams_steps_in_one_kernel_per_variable(name, keras_class,
                                                                          jit_compile):
    import tensorflow as tf

    fused = make_optimizer(name, 0.01, clip_norm=2.0)
    assert isinstance(fused, keras_class)
    reference = keras_class(**fused.get_config())
    rng = np.random.default_rng(0)
    start = [rng.normal(size=shape).astype("float32") for shape in [(3, 4), (4,)]]
    grads = [[rng.normal(size=w.shape).astype("float32") * 3 for w in start] for _ in range(6)]
    runs = {}
    for key, optimizer in (("fused", fused), ("keras", reference)):
        weights = [keras.Variable(w) for w in start]
        optimizer.build(weights)
        step = tf.function(_applier(optimizer, weights), jit_compile=jit_compile)
        for g in grads:
            step([tf.constant(v) for v in g])
        runs[key] = [w.numpy() for w in weights]
        runs[key + " moments"] = [m.numpy() for m in optimizer.variables]
        if key == "fused":  # the update is ResourceApplyAdam, not Keras's ops
            graph = step.get_concrete_function([tf.constant(v) for v in grads[0]]).graph
            types = [op.type for op in graph.get_operations()]
            assert types.count("ResourceApplyAdam") == len(start)
    for key in ("", " moments"):
        for got, want in zip(runs["fused" + key], runs["keras" + key]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(runs["fused"][0], start[0])
    # It is saved and loaded by name, as a run's checkpoint holds it.
    copy = keras.optimizers.deserialize(keras.optimizers.serialize(fused))
    assert type(copy) is type(fused) and copy.get_config() == fused.get_config()


def _applier(optimizer, weights):
    return lambda grads: optimizer.apply_gradients(zip(grads, weights))


def test_an_optimizer_object_is_recorded_and_resumed(tmp_path):
    given = keras.optimizers.AdamW(2e-3, global_clipnorm=0.5)
    settings = {key: value for key, value in TINY.items()
                if key not in ("optimizer", "learning_rate")}
    with pytest.raises(InputError, match="^learning_rate: expected none with an optimizer"):
        train(tmp_path / "run", epochs=1, optimizer=given, learning_rate=0.1, **settings)
    first = train(tmp_path / "run", epochs=1, optimizer=given, **settings)
    recorded = RunDirectory(tmp_path / "run").read_config()["train"]
    assert recorded["optimizer"]["class_name"] == "AdamW"
    assert recorded["optimizer"]["config"]["learning_rate"] == pytest.approx(2e-3)
    assert recorded["optimizer"]["config"]["global_clipnorm"] == 0.5
    assert recorded["learning_rate"] is None and recorded["clip_norm"] is None
    assert first.model.optimizer is not given  # the run trains a copy
    resumed = train(tmp_path / "run", epochs=2, resume=True, verbose=0)
    assert isinstance(resumed.model.optimizer, keras.optimizers.AdamW)
    assert resumed.model.optimizer.global_clipnorm == 0.5
    assert int(resumed.model.optimizer.iterations.numpy()) == 6


def test_clip_norm_by_name_is_kept_by_the_run(tmp_path):
    result = train(tmp_path / "run", epochs=1, clip_norm=2.5, **{**TINY, "optimizer": "sgd"})
    assert result.config["train"]["clip_norm"] == 2.5
    saved = load_model(RunDirectory(tmp_path / "run").checkpoint_path("last"))
    assert saved.optimizer.global_clipnorm == 2.5 and saved.optimizer.momentum == 0.9


# -- early stopping ------------------------------------------------------------------------

class WorseFromSecondEpoch(keras.callbacks.Callback):
    """Spoils the weights before each test pass from the second epoch on: the test bound of
    epoch 1 stays the best."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_test_begin(self, logs=None):
        if self.epoch >= 1:
            for weight in self.model.trainable_weights:
                weight.assign(weight + 1.0)


def test_early_stopping_keeps_the_best_epochs_weights_and_says_why(tmp_path):
    result = train(tmp_path / "run", epochs=6, early_stopping_patience=1,
                   callbacks=[WorseFromSecondEpoch()], **TINY)
    run = RunDirectory(tmp_path / "run")
    state = run.read_state()
    assert state["status"] == "finished"
    assert state["stopped_early"] == {"epoch": 2, "best_epoch": 1}
    assert [row["epoch"] for row in run.read_metrics()] == [1, 2]
    final, best, last = (run.load_model(name).get_weights() for name in ("model", "best", "last"))
    for a, b in zip(final, best):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(final, last))
    for a, b in zip(result.model.get_weights(), best):
        np.testing.assert_array_equal(a, b)
    # A resume respects the stop: nothing to do, the best epoch's model is the run's.
    again = train(tmp_path / "run", epochs=6, resume=True, verbose=0)
    assert run.read_state() == state
    for a, b in zip(again.model.get_weights(), best):
        np.testing.assert_array_equal(a, b)


# -- the command line ------------------------------------------------------------------------

def test_the_controls_are_flags_of_tfvae_train():
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for flag in ("--optimizer", "--learning-rate-schedule", "--learning-rate-warmup-epochs",
                 "--clip-norm", "--early-stopping-patience"):
        assert flag in help_text, flag
    for name in ("adamw", "adamax", "sgd", "exponential", "iwae", "cosine"):
        assert name in help_text, name


@pytest.mark.parametrize("argument, value, expected", [
    ("clip_norm", -1.0, "a finite number > 0"),
    ("early_stopping_patience", 0, "an integer >= 1"),
    ("learning_rate_warmup_epochs", -2, "an integer >= 0"),
    ("learning_rate_schedule", "linear", "one of constant, exponential, iwae, cosine"),
    ("optimizer", "rmsprop", "one of adagrad, adam, adamw, adamax, sgd"),
])
def test_bad_controls_are_refused_naming_them_before_writing(tmp_path, argument, value,
                                                             expected):
    with pytest.raises(InputError, match=f"^{argument}: expected {expected}, got"):
        train(tmp_path / "run", **{argument: value})
    assert not (tmp_path / "run").exists()


def test_a_bad_control_on_the_command_line_is_one_line_naming_the_flag(tmp_path):
    done = run_cli("train", "--out", tmp_path / "run", "--clip-norm", "-1")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].endswith("--clip-norm: expected a finite number > 0, got -1.0"), done.stderr
    assert "Traceback" not in done.stderr
