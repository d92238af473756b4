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
from pathlib import Path

import numpy as np
import pytest

from conftest import cli_env, run_cli
from tfvae.cli import main
from tfvae.export.versions import export_run
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
    # The runs go side by side, each killed at its moment after its own start: the test waits
    # for the later moment only, not for their sum.
    processes = []
    for i in range(len(moments)):
        processes.append((time.monotonic(), subprocess.Popen(
            [sys.executable, "-m", "tfvae", "train", "--out", str(tmp_path / f"run{i}"), *TINY,
             "--epochs", "3"], env=cli_env(), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)))
    try:
        for moment, (started, process) in sorted(zip(moments, processes), key=lambda p: p[0]):
            time.sleep(max(0.0, started + moment - time.monotonic()))
            process.send_signal(signal.SIGKILL)
            process.wait()
    finally:
        for _, process in processes:
            process.kill()
    for i, moment in enumerate(moments):
        run_dir = tmp_path / f"run{i}"
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


def test_a_full_disk_keeps_the_last_checkpoint_and_leaves_no_partial_file(reference, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)  # 3 epochs done, as a train of its own would leave them
    last = RunDirectory(run_dir).checkpoint_path("last")
    saved = last.read_bytes()
    limit = last.stat().st_size // 2  # the next checkpoint cannot be written whole

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    full = subprocess.run(
        [sys.executable, "-m", "tfvae", "train", "--out", str(run_dir), "--resume",
         "--epochs", "5"], env=cli_env(), capture_output=True, text=True, timeout=600,
        preexec_fn=small_disk)
    assert full.returncode == 1, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in full.stderr, full.stderr
    assert "File too large" in lines[0] and "--resume" in lines[0]
    assert last.read_bytes() == saved
    assert not _temporaries(run_dir)
    state = json.loads((run_dir / "state.json").read_text())
    assert state["epochs_completed"] == 3
    # Space is back: the run resumes from its last good checkpoint.
    assert _train(run_dir, "--resume", "--epochs", "5") == 0
    assert [int(r["epoch"]) for r in RunDirectory(run_dir).read_metrics()] == [1, 2, 3, 4, 5]


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


def test_overwrite_replaces_only_what_tfvae_wrote(reference, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)  # a run tfvae wrote
    args = ["train", "--out", str(run_dir), *TINY, "--epochs", "1", "--quiet"]
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
    assert [line.split(":")[0] for line in log if line.startswith("epoch ")] == [
        "epoch 1/2", "epoch 2/2"]
    model, _ = load_run(run_dir)
    assert model.latent_dim == 3


# -- one writer at a time; nothing replaced that another process wrote -------------------------

def _wait_for(predicate, timeout=240, what="the condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _epochs_completed(run_dir):
    try:
        return RunDirectory(run_dir).read_state().get("epochs_completed", 0)
    except ValueError:  # read while being replaced: try again
        return 0


def test_a_run_has_one_writer_and_sigterm_leaves_it_resumable_exactly(reference, tmp_path, capsys):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "tfvae", "train", "--out", str(run_dir), *TINY, "--epochs", "3",
         "--quiet"], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _epochs_completed(run_dir) >= 1, what="the first epoch")
        process.send_signal(signal.SIGSTOP)  # held mid-run while the others try
        for flags in ([], ["--overwrite"], ["--resume"]):
            assert _train(run_dir, "--epochs", "3", *flags) == 2, flags
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and f"process {process.pid} " in err[0], err
            assert "no other process is writing" in err[0], err
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGCONT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted by SIGTERM" in lines[0], lines
    state = RunDirectory(run_dir).read_state()
    assert state["status"] == "interrupted" and state["epochs_completed"] in (1, 2)
    assert f"tfvae train --out {run_dir} --resume" in lines[0]
    # The killed writer's lock went with it: the advised command works and gives the same run.
    assert _train(run_dir, "--resume", "--epochs", "3") == 0
    assert _curves(run_dir) == _curves(reference)
    assert RunDirectory(run_dir).read_state()["status"] == "finished"
    assert not _temporaries(run_dir)


def test_the_writer_lock_names_its_holder_and_a_refused_command_leaves_no_directory(tmp_path):
    from tfvae.errors import InputError
    from tfvae.storage import exclusive_writer

    folder = tmp_path / "new"
    with exclusive_writer(folder):
        with pytest.raises(InputError, match=f"process {os.getpid()} on"):
            with exclusive_writer(folder):
                pass
    assert not folder.exists()  # made for the lock, left empty: removed again
    (tmp_path / "kept").mkdir()
    with exclusive_writer(tmp_path / "kept"):
        pass
    with exclusive_writer(tmp_path / "kept"):  # released, and taken again
        pass


def test_the_last_step_of_a_write_refuses_a_file_another_process_wrote(tmp_path):
    from tfvae.errors import InputError
    from tfvae.storage import write_atomic, write_bytes

    out = tmp_path / "out.npz"

    def meanwhile(tmp):  # another process writes `out` while this one works
        out.write_bytes(b"theirs")
        Path(tmp).write_bytes(b"mine")

    with pytest.raises(InputError, match="another process wrote while this one ran"):
        write_atomic(out, meanwhile, overwrite=False)
    assert out.read_bytes() == b"theirs"
    assert not _temporaries(tmp_path)
    write_atomic(out, lambda tmp: Path(tmp).write_bytes(b"mine"), overwrite=True)
    assert out.read_bytes() == b"mine"
    # What a killed writer of `out` left is removed by the next write of `out`, other files' not.
    stale = tmp_path / ".out.npz.tmp999999999-x.npz"
    other = tmp_path / ".other.npz.tmp999999999-x.npz"
    stale.write_bytes(b""), other.write_bytes(b"")
    write_bytes(tmp_path / "new.npz", b"1", overwrite=False)
    assert stale.exists()
    write_bytes(out, b"2")
    assert not stale.exists() and other.exists()


@pytest.mark.parametrize("command", ["sample", "augment"])
def test_an_out_file_written_while_a_command_runs_is_kept(command, tiny_run, tmp_path,
                                                          monkeypatch, capsys):
    import tfvae.images
    import tfvae.applications.synthesis

    out = tmp_path / ("out.png" if command == "sample" else "out.npz")
    module, name = ((tfvae.images, "sample_images") if command == "sample"
                    else (tfvae.applications.synthesis, "augment"))
    original = getattr(module, name)

    def racing(*args, **kwargs):
        out.write_bytes(b"another process's output")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, racing)
    if command == "sample":
        args = ["sample", tiny_run, "--num", "4", "--out", out]
    else:
        inputs = tmp_path / "in.npz"
        np.savez(inputs, x=np.full((2, 28, 28), 0.5, np.float32))
        args = ["augment", tiny_run, "--input", inputs, "--per-example", "2", "--out", out]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and "it was kept" in err[0], err
    assert out.read_bytes() == b"another process's output"
    assert not _temporaries(tmp_path)


def test_an_export_takes_the_next_version_when_another_export_took_its_own(reference, tmp_path,
                                                                            monkeypatch):
    import tfvae.export.savedmodel
    from tfvae.export.metadata import read_metadata

    original = tfvae.export.savedmodel.write_warmup

    def racing(specs, saved, model_name, *given):
        original(specs, saved, model_name, *given)
        taken = tmp_path / model_name / "1"
        if not taken.exists():  # another export finishes version 1 first
            taken.mkdir()
            (taken / "saved_model.pb").write_bytes(b"theirs")

    monkeypatch.setattr(tfvae.export.savedmodel, "write_warmup", racing)
    path = export_run(reference, "vae", base_dir=tmp_path, num_samples=2)
    assert path == tmp_path / "vae" / "2"
    assert read_metadata(path)["version"] == 2
    assert (tmp_path / "vae" / "1" / "saved_model.pb").read_bytes() == b"theirs"
    shutil.rmtree(tmp_path / "vae" / "1")
    # A version asked for by number is refused instead.
    from tfvae.errors import InputError

    with pytest.raises(InputError, match="another export wrote while this one ran"):
        export_run(reference, "vae", base_dir=tmp_path, version=1, num_samples=2)
    assert (tmp_path / "vae" / "1" / "saved_model.pb").read_bytes() == b"theirs"


# -- resumed as it was, or refused -------------------------------------------------------------

def test_a_resumed_run_keeps_the_xla_choice_of_the_run_it_resumes(tmp_path):
    from tfvae.training.pipeline import train

    def run(run_dir, epochs, **kwargs):
        return train(run_dir, model_config={"latent_dim": 3, "hidden": 32},
                     data_config={"name": "mnist", "train_examples": 600, "test_examples": 200},
                     epochs=epochs, batch_size=100, optimizer="adam", learning_rate=3e-3, seed=0,
                     verbose=0, **kwargs)

    run(tmp_path / "reference", 2, jit_compile=True)
    run(tmp_path / "resumed", 1, jit_compile=True)
    # "auto" on 600 examples would never compile: the resumed part compiles as the run did.
    model = run(tmp_path / "resumed", 2, resume=True).model
    assert model.jit_compile is True
    assert RunDirectory(tmp_path / "resumed").read_config()["train"]["jit_compile"] is True
    assert _curves(tmp_path / "resumed") == _curves(tmp_path / "reference")


def test_resume_takes_the_same_data_at_a_new_place_and_refuses_other_data(tmp_path, capsys):
    images = (np.random.default_rng(0).random((300, 28, 28)) * 255).astype(np.uint8)
    first = tmp_path / "digits.npz"
    np.savez(first, x=images)
    run_dir = tmp_path / "run"
    flags = ["--hidden", "8", "--latent-dim", "2", "--batch-size", "100", "--quiet"]
    assert main(["train", "--out", run_dir, "--dataset", first, "--epochs", "1", *flags]) == 0
    moved = tmp_path / "elsewhere.npz"
    first.rename(moved)
    other = tmp_path / "other.npz"
    changed = images.copy()
    changed[0, 0, 0] ^= 1
    np.savez(other, x=changed)
    fewer = tmp_path / "fewer.npz"
    np.savez(fewer, x=images[:200])
    before = (run_dir / "config.json").read_text()
    capsys.readouterr()
    for path, what in ((other, "values differ"), (fewer, "examples [180, 20]")):
        assert main(["train", "--out", run_dir, "--resume", "--dataset", path,
                     "--epochs", "2"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--dataset" in err[0] and what in err[0], err
    assert (run_dir / "config.json").read_text() == before
    # Not given: the message names the old place and the flag.
    assert main(["train", "--out", run_dir, "--resume", "--epochs", "2"]) == 2
    assert "give it with --dataset PATH" in capsys.readouterr().err
    assert main(["train", "--out", run_dir, "--resume", "--dataset", moved, "--epochs", "2",
                 "--quiet"]) == 0
    config = RunDirectory(run_dir).read_config()
    assert config["data"]["name"] == str(moved) and config["train"]["epochs"] == 2
    assert len(RunDirectory(run_dir).read_metrics()) == 2


def test_resume_with_no_more_epochs_than_done_changes_nothing(reference, tmp_path,
                                                                          capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert main(["train", "--out", run_dir, "--resume", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tfvae train: error: --epochs:"), err
    assert "at least the 3 epochs" in err[0], err
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    # As many as the finished run has: nothing to do, and nothing changes.
    assert main(["train", "--out", run_dir, "--resume", "--epochs", "3"]) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_a_run_of_20000_latent_dimensions_is_read_resumed_and_exported(tmp_path):
    run_dir = tmp_path / "run"
    flags = ["--train-examples", "200", "--test-examples", "100", "--hidden", "8",
             "--latent-dim", "20000", "--batch-size", "100", "--quiet"]
    assert main(["train", "--out", run_dir, *flags, "--epochs", "1"]) == 0
    rows = RunDirectory(run_dir).read_metrics()
    assert len(rows[0]["kl_per_dimension"]) == 20000
    assert main(["train", "--out", run_dir, "--resume", "--epochs", "2", "--quiet"]) == 0
    assert len(RunDirectory(run_dir).read_metrics()) == 2
    path = export_run(run_dir, "wide", base_dir=tmp_path / "export", num_samples=2)
    assert (path / "saved_model.pb").is_file()
