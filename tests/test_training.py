"""Run directories: what training writes, resume after a kill, divergence, and the CLI."""

import json
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import cli_env, run_cli
from tfvae.cli import main
from tfvae.models import VAE
from tfvae.runs import RunDirectory, load_run
from tfvae.training.pipeline import TrainingDiverged, train

TINY = ["--train-examples", "1000", "--test-examples", "200", "--hidden", "32",
        "--latent-dim", "3", "--batch-size", "100", "--quiet"]


def test_cli_end_to_end(tmp_path, capsys):
    run_dir = tmp_path / "run"
    # The installed command once, in its own process; the others in this one.
    result = run_cli("train", "--out", run_dir, "--epochs", "2", "--optimizer", "adam",
                     "--learning-rate", "0.003", *TINY)
    assert result.returncode == 0, result.stderr
    assert "binarization dynamic" in result.stdout
    for name in ("config.json", "metrics.csv", "state.json", "model.keras",
                 "checkpoints/last.keras", "checkpoints/best.keras"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tensorboard").rglob("events.out.tfevents*"))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["binarize"] == "dynamic" and config["model"]["latent_dim"] == 3
    rows = RunDirectory(run_dir).read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(r["examples_per_second"] > 0 and r["test_elbo"] < 0 for r in rows)
    assert rows[1]["train_elbo"] > rows[0]["train_elbo"]

    capsys.readouterr()
    assert main(["evaluate", run_dir]) == 0
    printed = float(capsys.readouterr().out.split("test elbo:")[1].split()[0])
    # The final model's test bound is stochastic (z is sampled): close to the logged one.
    assert printed == pytest.approx(rows[-1]["test_elbo"], abs=3.0)

    for command in ("sample", "reconstruct"):
        png = tmp_path / f"{command}.png"
        assert main([command, run_dir, "--out", png]) == 0
        from PIL import Image
        image = np.asarray(Image.open(png))
        assert image.ndim == 2 and image.shape[0] > 56 and image.std() > 10


def _wait_for_epoch(run_dir, epochs, process, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        state = run_dir / "state.json"
        if state.exists() and (json.loads(state.read_text())["epochs_completed"] or 0) >= epochs:
            return
        time.sleep(0.2)
    raise AssertionError("training did not checkpoint in time")


def test_resume_continues_a_killed_run_from_its_checkpoint(tmp_path, capsys):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "tfvae", "train", "--out", str(run_dir), "--epochs", "1000",
         "--optimizer", "adam", *TINY], env=cli_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        _wait_for_epoch(run_dir, 1, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    done = json.loads((run_dir / "state.json").read_text())["epochs_completed"]
    assert not (run_dir / "model.keras").exists()

    assert main(["train", "--out", run_dir, *TINY]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", run_dir, "--resume", "--epochs", done + 2, "--quiet"]) == 0
    rows = RunDirectory(run_dir).read_metrics()
    assert [int(r["epoch"]) for r in rows] == list(range(1, done + 3))
    model, _ = load_run(run_dir)
    # 10 steps per epoch; the optimizer state came back with the weights.
    assert int(model.optimizer.iterations) == 10 * (done + 2)
    assert json.loads((run_dir / "state.json").read_text())["status"] == "finished"


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    # A penalty that turns NaN from step 15 on: epoch 1 (10 steps) is good, epoch 2 is not.
    def nan_after_15_steps(self):
        return tf.where(self.optimizer.iterations >= 15, np.nan, 0.0)

    monkeypatch.setattr(VAE, "_weight_penalty", nan_after_15_steps)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="NaN"):
        train(run_dir, model_config={"latent_dim": 2, "hidden": 16},
              data_config={"train_examples": 1000, "test_examples": 100}, epochs=3, verbose=0)
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "diverged" and state["epochs_completed"] == 1
    assert not (run_dir / "model.keras").exists()
    last = keras.saving.load_model(run_dir / "checkpoints" / "last.keras")
    assert int(last.optimizer.iterations) == 10
    assert all(np.all(np.isfinite(w)) for w in last.get_weights())
    assert len(RunDirectory(run_dir).read_metrics()) == 1


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("make_args, argument", [
    (lambda d: ["--dataset", "cifar99"], "--dataset"),
    (lambda d: ["--dataset", d / "missing.npz"], "--dataset"),
    (lambda d: ["--dataset", _write_npz(d / "rank.npz", x=np.zeros((10, 5, 4, 3, 2)))], "--dataset"),
    (lambda d: ["--dataset", _write_npz(d / "nan.npz", x=np.full((20, 4, 4), np.nan))], "--dataset"),
    (lambda d: ["--dataset", _write_npz(d / "inf.npz", x=np.full((20, 4, 4), np.inf))], "--dataset"),
    (lambda d: ["--dataset", _write_npz(d / "range.npz", x=np.full((20, 4, 4), 1.5)),
                "--likelihood", "bernoulli"], "--dataset"),
    (lambda d: ["--latent-dim", "0"], "--latent-dim"),
    (lambda d: ["--epochs", "0"], "--epochs"),
    (lambda d: ["--learning-rate", "-1"], "--learning-rate"),
    (lambda d: ["--train-examples", "0"], "--train-examples"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, make_args, argument):
    run_dir = tmp_path / "run"
    code = main(["train", "--out", str(run_dir), "--quiet", *map(str, make_args(tmp_path))])
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    message = stderr.strip().splitlines()
    assert len(message) == 1 and "Traceback" not in stderr
    assert f"error: {argument}" in message[0] and "expected" in message[0]
    assert not run_dir.exists()


def test_the_command_exits_2_on_bad_input(tmp_path, capsys):
    assert main(["train", "--out", tmp_path / "run", "--latent-dim", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "tfvae train: error: --latent-dim: expected an integer >= 1, got 0")


def test_an_existing_run_is_not_overwritten_without_overwrite(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    previous = json.dumps({"model_type": "vae", "model": {}, "data": {}, "train": {}})
    (run_dir / "config.json").write_text(previous)
    assert main(["train", "--out", str(run_dir), *TINY]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (run_dir / "config.json").read_text() == previous
    assert main(["train", "--out", str(run_dir), "--overwrite", "--epochs", "1", *TINY]) == 0
    assert json.loads((run_dir / "config.json").read_text())["train"]["epochs"] == 1


def test_commands_on_a_directory_that_is_no_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "RUN_DIR: expected a run directory" in capsys.readouterr().err


def test_evaluate_on_the_train_split(tiny_run, capsys):
    assert main(["evaluate", str(tiny_run), "--split", "train"]) == 0
    train_line = capsys.readouterr().out
    assert main(["evaluate", str(tiny_run), "--split", "test"]) == 0
    test_line = capsys.readouterr().out

    def elbo(line):
        return float(line.split("elbo:")[1].split()[0])

    assert train_line.startswith("train elbo:") and "1000 examples" in train_line
    assert test_line.startswith("test elbo:") and "200 examples" in test_line
    # The same model on two samples of MNIST digits: bounds of the same size.
    assert -400 < elbo(train_line) < -100 and abs(elbo(train_line) - elbo(test_line)) < 20


def test_estimator_a_with_static_binarization_and_adagrad(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["train", "--out", str(run_dir), "--epochs", "2", "--kl", "sampled",
                 "--num-samples", "2", "--binarize", "static", "--optimizer", "adagrad",
                 "--learning-rate", "0.05", *TINY])
    assert code == 0, capsys.readouterr().err
    assert "binarization static" in capsys.readouterr().out
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["kl"] == "sampled" and config["model"]["num_samples"] == 2
    assert config["data"]["binarize"] == "static" and config["train"]["optimizer"] == "adagrad"
    rows = RunDirectory(run_dir).read_metrics()
    assert rows[1]["train_elbo"] > rows[0]["train_elbo"]
    # Estimator A's KL is a sampled log-ratio: positive on average once q has moved from p.
    assert rows[1]["test_kl"] > 0
