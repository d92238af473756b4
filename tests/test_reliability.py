"""Faults injected into runs and exports: kills at random moments, a disk that fills up, runs
replaced, moved and resumed with other settings. Nothing that was written may be lost, and
nothing half-written may be left. ``docs/reliability.md`` lists each case and its test."""

import json
import os
import random
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import cli_env, run_cli
from tfvae.cli import main
from tfvae.export import export_run
from tfvae.runs import RunDirectory, load_run

TINY = ["--train-examples", "600", "--test-examples", "200", "--hidden", "32",
        "--latent-dim", "3", "--batch-size", "100", "--optimizer", "adam",
        "--learning-rate", "0.003"]
COMPARED = ("train_elbo", "test_elbo", "train_kl", "test_kl")


def _train(run_dir, *flags):
    """Train in this process (the faults are injected into other processes)."""
    return main(["train", "--out", run_dir, *TINY, *flags, "--quiet"])


def _curves(run_dir):
    return [{key: row[key] for key in ("epoch", *COMPARED)}
            for row in RunDirectory(run_dir).read_metrics()]


def _temporaries(folder):
    return [p for p in folder.rglob(".*") if ".tmp" in p.name]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 3-epoch run, to compare interrupted ones with."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    assert _train(run_dir, "--epochs", "3") == 0
    return run_dir


def test_kill_9_at_random_moments_then_resume_gives_the_uninterrupted_run(reference, tmp_path):
    moments = random.Random(0).sample([4.0, 6.0, 8.0, 10.0, 12.0], 2)
    for i, moment in enumerate(moments):
        run_dir = tmp_path / f"run{i}"
        process = subprocess.Popen(
            [sys.executable, "-m", "tfvae", "train", "--out", str(run_dir), *TINY,
             "--epochs", "3"], env=cli_env(), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        time.sleep(moment)
        process.send_signal(signal.SIGKILL)
        process.wait()
        run = RunDirectory(run_dir)
        if run.checkpoint_path("last").is_file():
            result = _train(run_dir, "--resume", "--epochs", "3")
        else:  # killed before the first checkpoint: nothing to resume, nothing lost
            if not run.is_run():  # killed before config.json was whole, even
                shutil.rmtree(run_dir, ignore_errors=True)
            result = _train(run_dir, "--epochs", "3", *(["--overwrite"] if run_dir.exists()
                                                         else []))
        assert result == 0, moment
        assert _curves(run_dir) == _curves(reference), moment
        assert not _temporaries(run_dir)


def test_a_full_disk_keeps_the_last_checkpoint_and_leaves_no_partial_file(tmp_path):
    run_dir = tmp_path / "run"
    assert _train(run_dir, "--epochs", "1") == 0
    last = RunDirectory(run_dir).checkpoint_path("last")
    saved = last.read_bytes()
    limit = last.stat().st_size // 2  # the next checkpoint cannot be written whole

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    full = subprocess.run(
        [sys.executable, "-m", "tfvae", "train", "--out", str(run_dir), "--resume",
         "--epochs", "3"], env=cli_env(), capture_output=True, text=True, timeout=600,
        preexec_fn=small_disk)
    assert full.returncode == 1, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in full.stderr, full.stderr
    assert "File too large" in lines[0] and "--resume" in lines[0]
    assert last.read_bytes() == saved
    assert not _temporaries(run_dir)
    state = json.loads((run_dir / "state.json").read_text())
    assert state["epochs_completed"] == 1
    # Space is back: the run resumes from its last good checkpoint.
    assert _train(run_dir, "--resume", "--epochs", "3") == 0
    assert [int(r["epoch"]) for r in RunDirectory(run_dir).read_metrics()] == [1, 2, 3]


def test_kill_9_of_an_export_leaves_no_visible_half_version(reference, tmp_path):
    base = tmp_path / "export"
    process = subprocess.Popen(
        [sys.executable, "-m", "tfvae", "export", str(reference), "--model-name", "m",
         "--base-dir", str(base)], env=cli_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    # Killed once its staging directory exists, while the SavedModel is written.
    deadline = time.time() + 120
    while time.time() < deadline and not (base / "m").is_dir():
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    versions = [p for p in (base / "m").iterdir() if p.name.isdigit()]
    for version in versions:  # if the rename happened, the version is whole
        assert (version / "saved_model.pb").is_file() and (version / "assets").is_dir()
    path = export_run(reference, "m", base_dir=base)
    assert path.name == str(len(versions) + 1)
    assert sorted(p.name for p in (base / "m").iterdir()) == [
        str(v) for v in range(1, len(versions) + 2)]


def test_an_export_onto_a_full_disk_writes_no_version(reference, tmp_path):
    base = tmp_path / "export"

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    full = subprocess.run(
        [sys.executable, "-m", "tfvae", "export", str(reference), "--model-name", "m",
         "--base-dir", str(base)], env=cli_env(), capture_output=True, text=True, timeout=600,
        preexec_fn=small_disk)
    assert full.returncode == 1, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "File too large" in lines[0] and "export again" in lines[0]
    assert list((base / "m").iterdir()) == []
    assert export_run(reference, "m", base_dir=base).name == "1"


def test_overwrite_replaces_only_what_tfvae_wrote(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["train", "--out", str(run_dir), *TINY, "--epochs", "1", "--quiet"]
    assert main(args) == 0
    (run_dir / "my_notes.txt").write_text("mine")
    (run_dir / "checkpoints" / "mine.keras").write_bytes(b"mine")  # inside tfvae's folder
    assert main([*args, "--overwrite", "--latent-dim", "2"]) == 0
    assert (run_dir / "my_notes.txt").read_text() == "mine"
    assert not (run_dir / "checkpoints" / "mine.keras").exists()
    assert RunDirectory(run_dir).read_config()["model"]["latent_dim"] == 2
    # A directory that tfvae did not write is never removed, even with --overwrite.
    user_dir = tmp_path / "project"
    user_dir.mkdir()
    (user_dir / "config.json").write_text('{"my": "settings"}')
    capsys.readouterr()
    assert main(["train", "--out", str(user_dir), "--overwrite", *TINY]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (user_dir / "config.json").read_text() == '{"my": "settings"}'


def test_resume_refuses_a_changed_setting_and_records_more_epochs(reference, tmp_path, capsys):
    run_dir = tmp_path / "run"
    subprocess.run(["cp", "-r", str(reference), str(run_dir)], check=True)
    before = sorted(p.name for p in run_dir.rglob("*"))
    for flag, value in (("--latent-dim", "5"), ("--learning-rate", "0.1"),
                        ("--dataset", "frey_face"), ("--model", "autoencoder")):
        assert main(["train", "--out", str(run_dir), "--resume", flag, value]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"tfvae train: error: {flag}: expected") and "--epochs" in err
    assert sorted(p.name for p in run_dir.rglob("*")) == before
    # The same setting, given again, is no change; more epochs are, and config.json says so.
    assert main(["train", "--out", str(run_dir), "--resume", "--latent-dim", "3",
                 "--epochs", "4", "--quiet"]) == 0
    assert RunDirectory(run_dir).read_config()["train"]["epochs"] == 4
    assert len(RunDirectory(run_dir).read_metrics()) == 4


def test_a_run_works_from_anywhere_and_says_where_its_dataset_went(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    images = (np.random.default_rng(0).random((60, 28, 28)) * 255).astype(np.uint8)
    np.savez(data / "digits.npz", x=images)
    monkeypatch.chdir(data)
    assert main(["train", "--out", "run", "--dataset", "digits.npz", "--train-examples", "100",
                 "--hidden", "8", "--latent-dim", "2", "--epochs", "1", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "--train-examples 100 is more than the 54" in err
    config = RunDirectory(data / "run").read_config()
    assert config["data"]["name"] == str(data / "digits.npz")
    assert config["data"]["train_examples"] == 54
    # Moved, and run from elsewhere: the run still finds its dataset.
    (data / "run").rename(tmp_path / "moved")
    monkeypatch.chdir(tmp_path.parent)
    assert main(["evaluate", str(tmp_path / "moved")]) == 0
    # The dataset moved too: the command says how to give it.
    (data / "digits.npz").rename(tmp_path / "digits.npz")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "moved")]) == 2
    err = capsys.readouterr().err
    assert "--dataset" in err and "digits.npz" in err
    assert main(["evaluate", str(tmp_path / "moved"), "--dataset",
                 str(tmp_path / "digits.npz")]) == 0


def test_files_get_the_users_umask_and_a_killed_writer_leaves_nothing(reference, tmp_path):
    old = os.umask(0o022)
    try:
        run_dir = tmp_path / "run"
        subprocess.run(["cp", "-r", str(reference), str(run_dir)], check=True)
        dead = 2 ** 22 + 12345  # above the kernel's pid_max: never a live process
        stale = run_dir / "checkpoints" / f".last.keras.tmp{dead}-x.keras"
        stale.write_bytes(b"half a checkpoint")
        alive = run_dir / "checkpoints" / f".best.keras.tmp{os.getpid()}-y.keras"
        alive.write_bytes(b"another writer's")
        assert main(["train", "--out", str(run_dir), "--resume", "--epochs", "4",
                     "--quiet"]) == 0
        assert not stale.exists() and alive.exists()
        base = tmp_path / "export"
        (base / "m").mkdir(parents=True)
        (base / "m" / f".1.tmp{dead}-z").mkdir()
        path = export_run(run_dir, "m", base_dir=base)
        assert sorted(p.name for p in (base / "m").iterdir()) == ["1"]
        for written in (run_dir / "config.json", run_dir / "state.json", run_dir / "model.keras",
                        run_dir / "metrics.csv", run_dir / "checkpoints" / "last.keras",
                        path / "saved_model.pb"):
            assert stat.S_IMODE(written.stat().st_mode) == 0o644, written
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
    finally:
        os.umask(old)


def test_logs_are_plain_lines_when_stdout_is_not_a_terminal(tmp_path, capsys):
    run_dir = tmp_path / "run"
    result = run_cli("train", "--out", run_dir, *TINY, "--epochs", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\r" not in out and "\x1b" not in out and "\b" not in out
    lines = out.strip().splitlines()
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epoch_lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("train elbo" in line and "test elbo" in line and "examples/s" in line
               for line in epoch_lines)
    test_elbo = RunDirectory(run_dir).read_metrics()[-1]["test_elbo"]
    assert lines[-1].startswith(f"tfvae train: test elbo {test_elbo:.2f} after 2 epochs")
    # --quiet prints no epoch, but the run directory keeps them.
    capsys.readouterr()
    assert _train(tmp_path / "quiet", "--epochs", "2") == 0
    assert "epoch 1/2" not in capsys.readouterr().out
    log = (tmp_path / "quiet" / "train.log").read_text().splitlines()
    assert [line.split(":")[0] for line in log] == ["epoch 1/2", "epoch 2/2"]
    model, _ = load_run(run_dir)
    assert model.latent_dim == 3
