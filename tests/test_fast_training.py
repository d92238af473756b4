"""The fast training path: per-example noise, the epoch stream, on-device binarization, XLA,
steps per execution and mixed precision."""

import functools
import json
import time

import numpy as np
import pytest
import tensorflow as tf

from tfvae import VAE, noise
from tfvae import data as datasets
from tfvae.errors import InputError
from tfvae.runs import RunDirectory
from tfvae.storage import read_json
from tfvae.training import execution
from tfvae.training.execution import largest_divisor, nearest_divisor, resolve_jit_compile
from tfvae.training.pipeline import train

SEED = tf.constant([7, -3], tf.int32)
TINY = {"model_config": {"latent_dim": 3, "hidden": 16},
        "data_config": {"name": "mnist", "train_examples": 300, "test_examples": 100},
        "batch_size": 100, "optimizer": "adam", "learning_rate": 1e-3, "verbose": 0}


# -- noise ------------------------------------------------------------------------------------

def test_a_replica_draws_the_rows_of_its_examples_in_the_global_batch():
    whole = noise.standard_normal(SEED, [2], 10, [3])
    part = noise.standard_normal(SEED, [2], 4, [3], layout=(6, 10))
    np.testing.assert_array_equal(part, whole[:, 6:])
    probs = tf.fill([10, 5, 5, 1], 0.5)
    np.testing.assert_array_equal(noise.bernoulli(probs[3:7], SEED, layout=(3, 10)),
                                  noise.bernoulli(probs, SEED)[3:7])


def test_noise_is_the_same_compiled_with_xla_or_not():
    def draw():
        return (noise.standard_normal(SEED, [3], 50, [4]),
                noise.bernoulli(tf.fill([50, 28, 28, 1], 0.3), SEED), noise.split(SEED))

    eager, compiled = draw(), tf.function(draw, jit_compile=True)()
    np.testing.assert_allclose(eager[0], compiled[0], atol=1e-5)
    np.testing.assert_array_equal(eager[1], compiled[1])
    np.testing.assert_array_equal(eager[2], compiled[2])


def test_noise_has_the_right_distribution():
    z = noise.standard_normal(SEED, [], 200_000, []).numpy()
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(z > 1.96) - 0.025) < 0.002
    probs = tf.constant([[0.0, 0.3, 1.0]] * 100_000)
    x = noise.bernoulli(probs, SEED).numpy()
    assert set(np.unique(x)) <= {0.0, 1.0}
    assert x[:, 0].max() == 0 and x[:, 2].min() == 1
    assert abs(x[:, 1].mean() - 0.3) < 0.005
    other = noise.bernoulli(probs, noise.split(SEED)[0]).numpy()
    assert not np.array_equal(x, other)


# -- the epoch stream -------------------------------------------------------------------------

def take_epochs(stream, steps, epochs):
    it = iter(stream)
    return [[next(it).numpy() for _ in range(steps)] for _ in range(epochs)]


def test_stream_epochs_cover_every_example_once_in_a_new_order():
    x = datasets.load_dataset("mnist", train_examples=250).x_train
    steps = datasets.steps_per_epoch(len(x), 100)
    epochs = take_epochs(datasets.make_train_stream(x, batch_size=100, seed=1), steps, 2)
    for batches in epochs:
        assert [len(b) for b in batches] == [100, 100, 50]
        seen = np.concatenate(batches).reshape(len(x), -1)
        # Every image once: same multiset of rows (sorted), and the bytes path is exact.
        np.testing.assert_array_equal(np.sort(seen, axis=0), np.sort(x.reshape(len(x), -1), axis=0))
    assert not np.array_equal(epochs[0][0], epochs[1][0])


def test_stream_epoch_depends_on_its_number_not_on_earlier_iterators():
    x = np.random.default_rng(0).random((30, 4, 4, 1), dtype=np.float32)  # not 8-bit levels
    stream = datasets.make_train_stream(x, batch_size=7, seed=2)
    from_start = take_epochs(stream, 5, 3)
    take_epochs(stream, 5, 1)  # an extra iterator (Keras makes one to build the model)
    resumed = take_epochs(datasets.make_train_stream(x, batch_size=7, seed=2, first_epoch=2), 5, 1)
    for a, b in zip(from_start[2], resumed[0]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(from_start[0], take_epochs(stream, 5, 1)[0]):
        np.testing.assert_array_equal(a, b)


def test_stream_can_leave_out_the_partial_batch():
    x = datasets.load_dataset("mnist", train_examples=250).x_train
    assert datasets.steps_per_epoch(250, 100, drop_remainder=True) == 2
    (epoch,) = take_epochs(datasets.make_train_stream(x, batch_size=100, drop_remainder=True), 2, 1)
    assert [len(b) for b in epoch] == [100, 100]
    with pytest.raises(InputError, match="^batch_size: expected"):
        datasets.make_train_stream(x, batch_size=300, drop_remainder=True)


def test_stream_rejects_bad_arguments():
    x = np.zeros((10, 4, 4, 1), np.float32)
    with pytest.raises(InputError, match="^batch_size: expected"):
        datasets.make_train_stream(x, batch_size=0)
    with pytest.raises(InputError, match="^seed: expected"):
        datasets.make_train_stream(x, batch_size=2, seed=-1)


def test_largest_divisor():
    assert largest_divisor(469, 32) == 7
    assert largest_divisor(600, 32) == 30
    assert largest_divisor(10, 32) == 10
    assert largest_divisor(13, 12) == 1


def test_nearest_divisor_by_ratio():
    assert nearest_divisor(469, 32) == 67  # 7 x 67: 67 / 32 < 32 / 7
    assert nearest_divisor(600, 32) == 30
    assert nearest_divisor(10, 32) == 10
    assert nearest_divisor(13, 12) == 13  # a prime: all its steps, not one per call
    assert nearest_divisor(8, 4) == 4
    assert nearest_divisor(18, 6) == 6
    assert nearest_divisor(12, 24 ** 0.5) == 4  # 4 and 6 are equally far: the smaller


# -- the model --------------------------------------------------------------------------------

def seen_inputs(dynamic_binarization):
    """The batches the model's bound is computed on in one fit step of grey 0.5 images."""
    vae = VAE(latent_dim=2, hidden=8, seed=0)
    vae.dynamic_binarization = dynamic_binarization
    vae.compile(optimizer="adam", run_eagerly=True)
    seen = []
    bound_terms = vae._bound_terms

    def spy(x, seed, layout, labels=None):
        seen.append(x.numpy())
        return bound_terms(x, seed, layout, labels)

    vae._bound_terms = spy
    vae.fit(np.full((64, 28, 28, 1), 0.5, np.float32), batch_size=64, epochs=1, verbose=0)
    return seen[0]


def test_dynamic_binarization_happens_inside_the_training_step():
    binary = seen_inputs(True)
    assert set(np.unique(binary)) == {0.0, 1.0}
    assert abs(binary.mean() - 0.5) < 0.02
    assert set(np.unique(seen_inputs(False))) == {0.5}


# -- train() ----------------------------------------------------------------------------------

def test_train_uses_the_fast_path(tmp_path):
    vae = train(tmp_path / "run", epochs=1, **TINY).model
    assert vae.dynamic_binarization
    assert vae.steps_per_execution == 3  # 300 / 100 = 3 steps, all in one execution
    assert not vae.jit_compile  # 300 examples: too few to repay compiling
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for split in ("train", "validation"):
        events = EventAccumulator(str(tmp_path / "run" / "tensorboard" / split))
        events.Reload()
        assert {"epoch_elbo", "epoch_loss", "epoch_kl"} <= set(events.Tags()["tensors"])


def test_xla_auto_follows_the_measured_break_even_and_measures_only_when_it_matters():
    calls = []

    def measure(break_even):
        def figures():
            calls.append(break_even)
            return {"break_even_examples": break_even}
        return figures

    assert resolve_jit_compile("auto", 50_000, measure(40_000))
    assert not resolve_jit_compile("auto", 50_000, measure(60_000))
    assert not resolve_jit_compile("auto", 10 ** 9, measure(float("inf")))  # XLA no faster
    assert len(calls) == 3
    assert not resolve_jit_compile("auto", execution.XLA_NEVER_BELOW - 1, measure(0))
    assert resolve_jit_compile(True, 1, measure(10 ** 9))
    assert not resolve_jit_compile(False, 10 ** 9, measure(0))
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        assert not resolve_jit_compile("auto", 10 ** 9, measure(0))
    assert len(calls) == 3


def test_a_step_xla_cannot_compile_is_measured_as_never_worth_compiling():
    class Uncompiled:
        def fit(self, *args, **kwargs):
            pass

    def build(jit_compile):
        if jit_compile:
            raise tf.errors.UnimplementedError(None, None, "no XLA kernel for this op")
        return Uncompiled()

    figures = execution.measure_xla(build, data=None, steps_per_execution=1, examples_per_step=1)
    assert figures == {"break_even_examples": float("inf"),
                       "xla_error": "no XLA kernel for this op"}
    assert not resolve_jit_compile("auto", 10 ** 9, lambda: figures)


def test_xla_figures_are_measured_once_per_machine_and_model(tmp_path, monkeypatch):
    monkeypatch.setenv("TFVAE_CACHE_DIR", str(tmp_path))
    measured = []

    def measure():
        measured.append(1)
        return {"break_even_examples": 123}

    for _ in range(2):
        assert execution.xla_figures({"model": {"hidden": 8}}, measure) == {
            "break_even_examples": 123}
    assert len(measured) == 1
    execution.xla_figures({"model": {"hidden": 9}}, measure)
    assert len(measured) == 2
    (key, _), _ = read_json(tmp_path / "xla_break_even.json").items()
    assert json.loads(key)["cpu"] == execution.cpu_name() and json.loads(key)["tensorflow"]
    # Another machine's figures are not this one's.
    monkeypatch.setattr(execution, "cpu_name", lambda: "another processor")
    execution.xla_figures({"model": {"hidden": 8}}, measure)
    assert len(measured) == 3


def test_train_measures_xla_once_and_decides_from_the_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("TFVAE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(execution, "XLA_NEVER_BELOW", 0)
    monkeypatch.setattr(execution, "SHORT_RUN_SHARE", 0)  # time both ways, short as the run is
    # One execution (3 steps) per timed fit, not 64 steps: what is checked here is how the
    # figures are kept and used, which holds however roughly they are measured.
    monkeypatch.setattr(execution, "measure_xla",
                        functools.partial(execution.measure_xla, min_steps=3))
    vae = train(tmp_path / "a", epochs=1, **TINY).model
    cache = read_json(tmp_path / "cache" / "xla_break_even.json")
    assert len(cache) == 1
    (key, figures), = cache.items()
    assert json.loads(key)["model"]["hidden"] == 16 and json.loads(key)["batch_size"] == 100
    assert figures["compile_seconds"] >= 0
    assert figures["uncompiled_examples_per_second"] > 0
    assert figures["compiled_examples_per_second"] > 0
    gain = (1 / figures["uncompiled_examples_per_second"]
            - 1 / figures["compiled_examples_per_second"])
    if gain > 0:
        assert figures["break_even_examples"] == pytest.approx(
            figures["compile_seconds"] / gain, rel=0.05, abs=1)
    assert vae.jit_compile == (300 >= figures["break_even_examples"])
    # The figures decide the next run without measuring again.
    forced = {**figures, "break_even_examples": 0}
    monkeypatch.setattr(execution, "measure_xla", lambda *a, **k: pytest.fail("measured again"))
    (tmp_path / "cache" / "xla_break_even.json").write_text(json.dumps({key: forced}))
    assert train(tmp_path / "b", epochs=1, **TINY).model.jit_compile


class SlowFits:
    """A model whose every ``fit`` takes ``seconds``, compiled or not."""

    def __init__(self, jit_compile, seconds, built):
        self.seconds = seconds
        built.append(jit_compile)

    def fit(self, *args, **kwargs):
        time.sleep(self.seconds)


def test_the_cap_bounds_the_timing_and_a_short_run_skips_the_compiled_one():
    built = []

    def build(seconds):
        return lambda jit_compile: SlowFits(jit_compile, seconds, built)

    start = time.perf_counter()
    figures = execution.measure_xla(build(0.2), None, 1, 1, cap=0.5)
    # Fits begin at 0, 0.2 and 0.4 s, none after the cap: three uncompiled fits, 0.6 s.
    assert time.perf_counter() - start < 0.5 + 0.2 + 0.15
    assert figures == {"break_even_examples": float("inf"), "stopped_at_seconds": 0.5}
    assert built == [False, True]  # the compiled copy is built, never fitted
    built.clear()
    # 64 steps of one example in 0.01 s: 1000 examples take about 0.16 s, short against 10 s.
    figures = execution.measure_xla(build(0.01), None, 1, 1, cap=10, remaining=1000)
    assert figures["short_run_seconds"] == pytest.approx(1000 * 0.01 / 64, abs=0.1)
    assert built == [False]
    assert not resolve_jit_compile("auto", 10 ** 9, lambda: figures)


def test_train_announces_the_timing_stops_it_at_the_cap_and_says_what_it_chose(
        tmp_path, monkeypatch, capsys):
    from tfvae.cli import main

    monkeypatch.setenv("TFVAE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(execution, "XLA_NEVER_BELOW", 0)
    fitted = []
    timed = execution.timed_fits
    monkeypatch.setattr(execution, "timed_fits", lambda model, *a, **k: fitted.append(
        model.jit_compile) or timed(model, *a, **k))
    # Timed fits of 3 steps, not 64: the messages depend on the cap, not on the figures' accuracy.
    monkeypatch.setattr(execution, "measure_xla",
                        functools.partial(execution.measure_xla, min_steps=3))
    tiny = ["--train-examples", "300", "--test-examples", "100", "--hidden", "16",
            "--latent-dim", "3", "--epochs", "1", "--steps-per-execution", "1"]

    def lines(name, *flags):
        capsys.readouterr()
        assert main(["train", "--out", str(tmp_path / name), *tiny, *flags]) == 0
        return [line for line in capsys.readouterr().out.splitlines() if "XLA" in line]

    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "a"), *tiny, "--xla-measure-seconds",
                 "1e-9"]) == 0
    out = capsys.readouterr().out.splitlines()
    # Each stage that can take a while is announced before it begins.
    stages = ["tfvae: dataset mnist: held in memory", "tfvae: preparing the model",
              "tfvae: timing this model",
              "tfvae: XLA off", "tfvae: tracing the training step before", "epoch 1/1"]
    found = [next(i for i, line in enumerate(out) if line.startswith(stage)) for stage in stages]
    assert found == sorted(found), out
    printed = [line for line in out if "XLA" in line]
    assert "timing this model's training step with and without XLA" in printed[0]
    assert "at most 1e-09 s (--xla-measure-seconds" in printed[0]
    assert printed[1] == ("tfvae: XLA off: timing it stopped at its cap of 1e-09 s "
                          "(--xla-measure-seconds); training uncompiled, the default")
    assert RunDirectory(tmp_path / "a").read_config()["train"]["jit_compile"] is False
    assert len(fitted) == 1  # the uncompiled variant, whose fits found the cap passed
    # The same cap again: the machine's figures say so without timing.
    assert "timing it stopped at its cap" in lines("b", "--xla-measure-seconds", "1e-9")[0]
    assert len(fitted) == 1
    # A larger cap times again; 300 examples are short against it, so only uncompiled.
    printed = lines("c", "--xla-measure-seconds", "600")
    assert "at most 600 s" in printed[0]
    assert "XLA off: this run takes about" in printed[1] and "too short" in printed[1]
    assert fitted == [False, False]


@pytest.mark.parametrize("settings", [{}, {"skip_norm": 1e6}], ids=["adam", "skip_norm"])
def test_the_training_step_is_traced_once(tmp_path, monkeypatch, settings):
    # An optimizer whose slots were created in the first trace made tf.function trace the step
    # twice: twice the tracing (and XLA's compiling) before the first epoch.
    traces = []
    step = VAE.train_step
    monkeypatch.setattr(VAE, "train_step", lambda self, data: traces.append(1) or step(self,
                                                                                      data))
    train(tmp_path / "run", epochs=2, **TINY, **settings)
    assert len(traces) == 1
    # So does the model's own fit, compiled in Python.
    vae = VAE(latent_dim=2, hidden=8, seed=0)
    vae.compile(optimizer="adam")
    vae.fit(np.zeros((8, 28, 28, 1), np.float32), batch_size=4, epochs=2, verbose=0)
    assert len(traces) == 2


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    whole = train(tmp_path / "whole", epochs=2, **TINY).model
    train(tmp_path / "part", epochs=1, **TINY)
    resumed = train(tmp_path / "part", epochs=2, resume=True, **TINY).model
    a, b = (RunDirectory(tmp_path / name).read_metrics()[1] for name in ("whole", "part"))
    for key in ("train_elbo", "train_kl", "test_elbo"):
        assert a[key] == pytest.approx(b[key], rel=1e-5), key
    for u, v in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(u, v, atol=1e-5)


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_mixed_precision_keeps_float32_variables_and_elbo(tmp_path, precision):
    import keras

    vae = train(tmp_path / "run", epochs=1, mixed_precision=precision, jit_compile=True,
                **TINY).model
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    dense = vae.encoder.body.layers_[0]
    assert dense.compute_dtype == precision and dense.kernel.dtype == "float32"
    assert all(v.dtype == "float32" for v in vae.trainable_variables)
    is_scaled = isinstance(vae.optimizer, keras.optimizers.LossScaleOptimizer)
    assert is_scaled == (precision == "float16")
    assert vae.elbo(np.zeros((2, 28, 28, 1), np.float32), seed=0).dtype == tf.float32
    row = RunDirectory(tmp_path / "run").read_metrics()[0]
    assert np.isfinite(row["train_elbo"]) and np.isfinite(row["test_elbo"])
    assert read_json(tmp_path / "run" / "config.json")["train"]["mixed_precision"] == precision
    with pytest.raises(InputError, match="^mixed_precision: expected"):
        train(tmp_path / "run", epochs=2, resume=True, mixed_precision="float16"
              if precision == "bfloat16" else "bfloat16", **TINY)


def test_bad_speed_arguments_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="^mixed_precision: expected"):
        train(tmp_path / "a", mixed_precision="float8", **TINY)
    with pytest.raises(InputError, match="^jit_compile: expected"):
        train(tmp_path / "b", jit_compile="yes", **TINY)
    with pytest.raises(InputError, match="^steps_per_execution: expected"):
        train(tmp_path / "c", steps_per_execution=0, **TINY)
    assert not any(tmp_path.iterdir())


def test_cli_speed_flags(tmp_path, capsys):
    from tfvae.cli import main

    # In this process: the flags' parsing and effect are under test, not the interpreter's start.
    code = main(["train", "--out", str(tmp_path / "run"), "--train-examples", "300",
                 "--test-examples", "100", "--hidden", "16", "--latent-dim", "3",
                 "--epochs", "1", "--batch-size", "100", "--strategy", "mirrored",
                 "--mixed-precision", "bfloat16", "--jit-compile", "on",
                 "--steps-per-execution", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    # On a machine without GPUs MirroredStrategy has one replica, so XLA stays as asked; 2 steps
    # per execution round to 3, the divisor of the epoch's 3 steps nearest to 2 (1 is farther).
    assert "1 replica(s)" in out and "3 steps per execution" in out
    config = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert config["strategy"] == "mirrored" and config["mixed_precision"] == "bfloat16"
