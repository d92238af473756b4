"""``tfvae reproduce``: the experiments' definitions, the smoke budget end to end, resume, NaN."""

import csv
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
from PIL import Image
from scipy.stats import norm

from conftest import ROOT, cli_env
from tfvae import InputError, paper
from tfvae.cli import main
from tfvae.paper import budgets as B
from tfvae.paper import loop as L
from tfvae.images import manifold_latents

TINY = dataclasses.replace(
    B.BUDGETS["smoke"], name="tiny", points=3, eval_examples=50, log_px_examples=4,
    hmc={"num_samples": 8, "num_chains": 2, "burnin": 5, "leapfrog_steps": 3},
    importance_samples=10, learning_rates=(0.02,), pilot_samples=200)


def _tiny_specs(experiment, budget):
    return [B.RunSpec(experiment, "mnist", method, 2, 8, 200, 4800)
            for method in ("wake_sleep", "mcem")]


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_experiments_are_the_papers():
    cpu = B.BUDGETS["cpu"]
    fig2 = B.experiment_runs("fig2", cpu)
    assert len(fig2) == 18  # (5 MNIST + 4 Frey Face latent sizes) x (AEVB, wake-sleep)
    assert {(s.dataset, s.latent_dim, s.hidden) for s in fig2} == {
        *(("mnist", nz, 500) for nz in (3, 5, 10, 20, 200)),
        *(("frey_face", nz, 200) for nz in (2, 5, 10, 20))}
    fig3 = B.experiment_runs("fig3", cpu)
    assert sorted((s.n_train, s.method) for s in fig3) == [
        (1000, "aevb"), (1000, "mcem"), (1000, "wake_sleep"),
        (50000, "aevb"), (50000, "wake_sleep")]  # MCEM is not online: N_train = 1000 only
    assert all(s.latent_dim == 3 and s.hidden == 100 and s.log_px for s in fig3)
    assert [(s.dataset, s.latent_dim) for s in B.experiment_runs("manifold", cpu)] == [
        ("mnist", 2), ("frey_face", 2)]
    assert B.BUDGETS["paper"].fig2_samples["mnist"] == 10**8
    # Figure 4 at the paper's 10^7 samples; the long budget ten times the cpu one's training.
    assert min(cpu.manifold_samples.values()) >= 10**7
    long = B.BUDGETS["long"]
    for field in ("fig2_samples", "fig3_samples"):
        assert all(n >= 10 * getattr(cpu, field)[key] for key, n in getattr(long, field).items())
    assert [s.name for s in B.experiment_runs("fig2", long)] == [s.name for s in fig2]
    assert cpu.learning_rates == (0.01, 0.02, 0.1)


def test_evaluation_points_are_log_spaced_batches_ending_at_the_budget():
    spec = B.RunSpec("fig2", "mnist", "aevb", 3, 500, None, 500_000)
    points = B.evaluation_points(spec, B.BUDGETS["cpu"])
    assert points[0] == 50_000 and points[-1] == 500_000 and len(points) == 6
    # On whole executions of 25 steps (the largest divisor of the run's 5000 steps up to the
    # default 32), so one steps-per-execution serves every fit of the run.
    assert all(p % 2500 == 0 for p in points)
    assert L.steps_per_execution(np.diff([0, *points]) // 100) == 25
    ratios = np.diff(np.log(points))
    assert np.allclose(ratios, ratios[0], atol=0.05)
    # MCEM evaluates each example 16 times a step: its points are whole steps of 1600 samples.
    mcem = B.evaluation_points(dataclasses.replace(spec, method="mcem"), B.BUDGETS["cpu"])
    assert all(p % 1600 == 0 for p in mcem) and mcem[-1] == 499_200 and len(mcem) == 6


def test_samples_evaluated_count_every_pass_of_a_training_example():
    """AEVB: one pass per example and step. MCEM: the HMC transition's 11 gradients (start and
    10 leapfrog steps) and the 5 weight updates, each a pass of every example of the batch."""
    budget = B.BUDGETS["smoke"]
    for method, optimizer_steps in (("aevb", 32), ("mcem", 2 * 5)):
        spec = B.RunSpec("fig3", "mnist", method, 2, 8, 200, 3200)
        data = L.RunData(spec, budget, 0)
        model = L.build_model(spec, data.dataset, 0)
        model.compile(optimizer="adagrad")
        L.train_samples(model, data, method, 3200, seed=0)
        assert int(model.optimizer.iterations) == optimizer_steps, method
    assert (model.leapfrog_steps, model.weight_updates, model.target_accept) == (10, 5, 0.9)


def _data_of(num_train):
    """What build_model reads of a dataset: its size, image shape and likelihood."""
    return types.SimpleNamespace(x_train=range(num_train), image_shape=(28, 28, 1),
                                 likelihood="bernoulli")


def test_paper_initialization_and_weight_prior():
    spec = B.RunSpec("fig2", "mnist", "aevb", 3, 500, None, 1000)
    model = L.build_model(spec, _data_of(50_000), seed=0)
    assert model.weight_decay == pytest.approx(1 / 50_000)  # N(0, I) prior, per example
    weights = np.concatenate([v.numpy().ravel() for v in model.trainable_variables])
    # N(0, 0.01) in the paper's notation N(mean, variance): a standard deviation of 0.1.
    assert abs(weights.std() - 0.1) < 0.002 and abs(weights.mean()) < 0.002
    mcem = L.build_model(dataclasses.replace(spec, method="mcem"), _data_of(1000), seed=0)
    assert mcem.latents.shape == (1000, 3)
    assert np.allclose(np.concatenate([v.numpy().ravel() for v in mcem.trainable_variables]).std(),
                       0.1, atol=0.005)


def test_wake_sleep_on_frey_face_leaves_the_one_gaussian_per_pixel_fit():
    """With the budgets' initialization, wake-sleep on Frey Face (N_z = 2, a step size of the
    grid) learns a decoder that uses z: its bound passes the log-likelihood of the best model
    that ignores z, one Gaussian per pixel fitted by maximum likelihood, which no bound of a
    decoder that ignores z can exceed. (At a standard deviation of 0.01 it stays below.)"""
    spec = B.RunSpec("fig2", "frey_face", "wake_sleep", 2, 200, None, 80_000)
    data = L.RunData(spec, B.BUDGETS["cpu"], seed=0)
    x = data.eval_train.reshape(len(data.eval_train), -1).astype(np.float64)  # what is scored
    one_gaussian_per_pixel = float(np.sum(-0.5 * np.log(2 * np.pi * x.var(axis=0)) - 0.5))
    model = L.build_model(spec, data.dataset, seed=0)
    model.compile(optimizer=keras.optimizers.Adagrad(0.01))
    L.train_samples(model, data, "wake_sleep", spec.samples, seed=0)
    bound = L.mean_bound(model, data.eval_train, seed=0)
    assert bound > one_gaussian_per_pixel + 20, (bound, one_gaussian_per_pixel)


def test_manifold_grid_goes_through_the_gaussian_inverse_cdf():
    z = manifold_latents(4).reshape(4, 4, 2)
    p = (np.arange(4) + 0.5) / 4
    np.testing.assert_allclose(norm.cdf(z[0, :, 0]), p, atol=1e-6)  # z1 grows to the right
    np.testing.assert_allclose(norm.cdf(z[:, 0, 1]), p[::-1], atol=1e-6)  # z2 grows upward


@pytest.mark.parametrize("experiment", ["fig2", "fig3"])
def test_figure_ticks_are_readable(experiment, tmp_path, monkeypatch):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from tfvae.paper import figures

    drawn = []
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or save(fig, path))
    # A figure that spans less than a decade (the stored cpu-budget curves), one that spans many.
    rows = _read_csv(ROOT / "docs" / "reproduction" / f"{experiment}.csv")
    long = [{**r, "samples": float(r["samples"]) * 10 ** i} for i, r in enumerate(rows[:6])]
    for curves in (rows, long):
        drawn.clear()
        fig = getattr(figures, f"plot_{experiment}")(curves, tmp_path / "fig.png")
        assert fig.is_file()
        (figure,) = drawn
        renderer = FigureCanvasAgg(figure).get_renderer()  # the figure was closed once saved
        for ax in figure.axes:
            if not ax.get_visible() or not ax.lines:
                continue
            lo, hi = ax.get_xlim()
            labels = [t for t in ax.xaxis.get_ticklabels(which="both")
                      if t.get_text() and t.get_visible() and lo <= t.get_position()[0] <= hi]
            assert 2 <= len(labels) <= 5, [t.get_text() for t in labels]
            boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
            for left, right in zip(boxes, boxes[1:]):
                assert left.x1 + 5 < right.x0, (ax.get_title(), [t.get_text() for t in labels])


def test_smoke_budget_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    # The command in this process: a subprocess would add only TensorFlow's import.
    assert main(["reproduce", "all", "--budget", "smoke", "--out", out]) == 0
    assert "samples" in capsys.readouterr().err  # progress
    smoke = B.BUDGETS["smoke"]
    for name in ("fig2.png", "fig3.png", "fig4_manifold_mnist.png", "fig4_manifold_frey_face.png",
                 "fig4_latent_mnist.png"):
        with Image.open(out / name) as image:
            assert image.width > 100 and image.height > 100
    with Image.open(out / "fig4_manifold_mnist.png") as image:  # 8 x 8 digits, 2x, 1px borders
        assert image.size == (2 * (8 * 29 + 1),) * 2
    for experiment in B.EXPERIMENTS:
        rows = _read_csv(out / f"{experiment}.csv")
        specs = B.experiment_runs(experiment, smoke)
        for spec in specs:
            mine = [r for r in rows if r["method"] == spec.method and r["dataset"] == spec.dataset
                    and int(r["latent_dim"]) == spec.latent_dim]
            assert [int(r["samples"]) for r in mine] == B.evaluation_points(spec, smoke)
            keys = (["train_log_px", "test_log_px"] if spec.log_px else []) + (
                [] if spec.method == "mcem" else ["train_bound", "test_bound"])
            for r in mine:
                assert all(math.isfinite(float(r[k])) and float(r[k]) < 0 or
                           spec.dataset == "frey_face" for k in keys)
    results = (out / "results.md").read_text()
    assert results.count("| finished |") == 4 + 3 + 2
    # Fig. 3 numbers: HMC log p(x) and importance sampling near each other and above the bound.
    fig3 = json.loads((out / "runs" / "fig3" / "mnist-nz3-n1000-aevb" / "state.json").read_text())
    last = fig3["rows"][-1]
    assert last["test_log_px"] > last["test_bound"] - 5


def _count_training(monkeypatch):
    trained = []
    real = L.train_samples

    def counting(model, data, method, samples, seed, **kwargs):
        trained.append((method, samples))
        return real(model, data, method, samples, seed, **kwargs)

    monkeypatch.setattr(L, "train_samples", counting)
    return trained


@pytest.mark.parametrize("stop", ["exception", "sigterm"])
def test_a_killed_run_resumes_where_it_stopped(stop, tmp_path, monkeypatch):
    from tfvae.interruption import Interrupted, stop_on_signals

    monkeypatch.setattr(paper, "experiment_runs", _tiny_specs)
    out = tmp_path / "out"
    reports = []

    def kill_after_first_mcem_point(message):
        reports.append(message)
        if "mcem: 1,600/" in message:  # the first point (one step) of the second run
            if stop == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            raise KeyboardInterrupt

    if stop == "exception":
        with pytest.raises(KeyboardInterrupt):
            paper.reproduce("fig3", TINY, out, log=kill_after_first_mcem_point)
    else:  # as `tfvae reproduce` runs it: the signal unwinds with a way to go on
        with stop_on_signals(), pytest.raises(Interrupted) as stopped:
            paper.reproduce("fig3", TINY, out, log=kill_after_first_mcem_point)
        assert stopped.value.exit_status == 128 + signal.SIGTERM
        assert "run the same command again to continue" in str(stopped.value)
    assert not (out / ".tfvae.lock").exists()
    mcem_run = out / "runs" / "fig3" / "mnist-nz2-n200-mcem"
    loading = None
    if stop == "sigterm":  # the checkpoint is the same either way: one process loads it
        # A new process (as after a real kill) can load the checkpoint with tfvae.models alone.
        # It loads a copy, while this process resumes (and removes the checkpoint).
        checkpoint = next((mcem_run / "checkpoints").glob("*.keras"))
        copy = tmp_path / checkpoint.name
        shutil.copyfile(checkpoint, copy)
        loading = subprocess.Popen(
            [sys.executable, "-c", "import sys, keras, tfvae.models; "
                                   "print(type(keras.saving.load_model(sys.argv[1])).__name__)",
             str(copy)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=cli_env())
    first = (out / "runs" / "fig3" / "mnist-nz2-n200-wake_sleep" / "state.json").read_text()
    trained = _count_training(monkeypatch)
    messages = []
    paper.reproduce("fig3", TINY, out, log=messages.append)

    points = {spec.method: B.evaluation_points(spec, TINY) for spec in _tiny_specs("fig3", TINY)}
    assert points == {"wake_sleep": [200, 1000, 4800], "mcem": [1600, 4800]}
    # The finished run is not touched; MCEM goes on from 1600 samples with its chains.
    assert (out / "runs" / "fig3" / "mnist-nz2-n200-wake_sleep" / "state.json").read_text() == first
    assert trained == [("mcem", 3200)]
    assert any("resumed at 1,600 samples" in m for m in messages)
    rows = _read_csv(out / "fig3.csv")
    for method in ("wake_sleep", "mcem"):
        assert [int(r["samples"]) for r in rows if r["method"] == method] == points[method]
    assert (out / "fig3.png").is_file() and (out / "results.md").is_file()
    ckpts = sorted(p.relative_to(mcem_run).as_posix() for p in mcem_run.rglob("*.keras"))
    assert ckpts == ["checkpoints/ckpt-000000004800.keras"]  # older checkpoints are removed
    if loading is not None:
        loaded, error = loading.communicate(timeout=300)
        assert loaded.strip() == "MCEM", error[-2000:]


def test_a_run_written_before_checkpoints_dir_resumes_and_a_changed_one_is_refused(tmp_path):
    from tfvae.cli.flags import speaking_as

    spec = B.RunSpec("fig2", "mnist", "aevb", 2, 8, 200, 1000)

    def stop_after_first_point(message):
        if "200/1,000 samples (" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        L.Run(spec, TINY, tmp_path, 0, stop_after_first_point).execute()
    run = tmp_path / "runs" / "fig2" / spec.name
    state = json.loads((run / "state.json").read_text())
    assert state["checkpoint"] == "checkpoints/ckpt-000000000200.keras"
    # As the earlier version left it: the checkpoint beside state.json, named bare.
    (run / state["checkpoint"]).rename(run / "ckpt-000000000200.keras")
    (run / "state.json").write_text(json.dumps({**state, "checkpoint": "ckpt-000000000200.keras"}))
    messages = []
    state = L.Run(spec, TINY, tmp_path, 0, messages.append).execute()
    assert state["status"] == "finished" and any("resumed at 200 samples" in m for m in messages)
    assert [r["samples"] for r in state["rows"]] == [200, 400, 1000]
    assert [p.relative_to(run).as_posix() for p in run.rglob("*.keras")] == [
        "checkpoints/ckpt-000000001000.keras"]
    # The same run name with other settings: refused, naming the arguments to change.
    with pytest.raises(InputError) as info:
        L.Run(dataclasses.replace(spec, hidden=16), TINY, tmp_path, 0, print).execute()
    assert info.value.argument == "out_dir" and "budget='tiny'" in str(info.value)
    with speaking_as("reproduce"):
        assert str(info.value).startswith("--out: ") and "--budget tiny" in str(info.value)


def test_a_nan_lowers_the_step_size_and_training_goes_on(tmp_path, monkeypatch):
    budget = dataclasses.replace(TINY, learning_rates=(0.01, 0.02))
    spec = B.RunSpec("fig2", "mnist", "aevb", 2, 8, 200, 1000)
    real = L.train_samples
    calls = []

    def nan_once(model, data, method, samples, seed, **kwargs):
        calls.append(float(model.optimizer.learning_rate.numpy()))
        if len(calls) == 5:  # after the two pilots (two halves each): the first segment
            return {"loss": math.nan}
        return {**real(model, data, method, samples, seed), "_lr": calls[-1]}

    monkeypatch.setattr(L, "train_samples", nan_once)
    monkeypatch.setattr(L, "training_score", lambda method, logs: logs["_lr"])  # pick 0.02
    messages = []
    state = L.Run(spec, budget, tmp_path, 0, messages.append).execute()
    assert state["status"] == "finished"
    assert state["step_size_changes"] == [{"samples": 200, "from": 0.02, "to": 0.01}]
    assert state["learning_rate"] == 0.01
    assert calls[5:] == pytest.approx([0.01, 0.01])  # the retried segment and the last one
    assert [r["samples"] for r in state["rows"]] == [200, 400, 1000]
    assert any("NaN" in m for m in messages)


def test_a_nan_at_the_smallest_step_size_stops_the_curve(tmp_path, monkeypatch):
    spec = B.RunSpec("fig2", "mnist", "aevb", 2, 8, 200, 1000)
    real = L.train_samples
    calls = []

    def nan_after_pilot(model, data, method, samples, seed, **kwargs):
        calls.append(samples)
        return real(model, data, method, samples, seed) if len(calls) <= 2 else {"loss": math.nan}

    monkeypatch.setattr(L, "train_samples", nan_after_pilot)
    state = L.Run(spec, TINY, tmp_path, 0, lambda m: None).execute()
    assert state["status"] == "diverged"
    assert [r["samples"] for r in state["rows"]] == [200]


def test_the_pilot_scores_its_second_half(tmp_path, monkeypatch):
    """0.01 leads over the pilot's first half (the climb from the initialization), 0.02 over the
    second; 0.02 must win, and each candidate trains the pilot's samples in two halves."""
    budget = dataclasses.replace(TINY, learning_rates=(0.01, 0.02))
    spec = B.RunSpec("fig2", "mnist", "aevb", 2, 8, 200, 1000)
    real = L.train_samples
    calls = []

    def scripted(model, data, method, samples, seed, **kwargs):
        lr = round(float(model.optimizer.learning_rate.numpy()), 4)
        calls.append((lr, samples))
        logs = real(model, data, method, samples, seed)
        if len(calls) <= 4:  # the pilots
            first_half = len(calls) % 2 == 1
            logs["elbo"] = {(0.01, True): -100.0, (0.02, True): -300.0,
                            (0.01, False): -200.0, (0.02, False): -150.0}[(lr, first_half)]
        return logs

    monkeypatch.setattr(L, "train_samples", scripted)
    state = L.Run(spec, budget, tmp_path, 0, lambda m: None).execute()
    assert state["learning_rate"] == 0.02
    assert calls[:4] == [(0.01, 100), (0.01, 100), (0.02, 100), (0.02, 100)]


def test_progress_is_reported_during_long_stretches(monkeypatch):
    ticks = iter(range(0, 1000, 20))  # a clock that moves 20 s per reading
    monkeypatch.setattr(L.time, "perf_counter", lambda: next(ticks))
    seen = []
    progress = L.Progress(seen.append, B.samples_per_step("mcem"), every=30.0)
    progress.on_train_begin()
    for batch in range(4):
        progress.on_train_batch_end(batch)
    assert seen == [3200, 6400]  # after steps 2 and 4 (40 s, then 40 s more), 1600 samples each


def test_out_dir_must_match_the_budget_it_was_started_with(tmp_path, monkeypatch):
    monkeypatch.setattr(paper, "experiment_runs", lambda e, b: [])
    paper.reproduce("fig2", TINY, tmp_path / "a", log=lambda m: None)
    with pytest.raises(InputError) as info:
        paper.reproduce("fig2", "smoke", tmp_path / "a", log=lambda m: None)
    assert info.value.argument == "out_dir"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="other files"):
        paper.reproduce("fig2", TINY, tmp_path / "b", log=lambda m: None)
    with pytest.raises(InputError) as info:
        paper.reproduce("fig9", TINY, tmp_path / "c", log=lambda m: None)
    assert info.value.argument == "EXPERIMENT"
    with pytest.raises(InputError) as info:
        paper.reproduce("fig2", "huge", tmp_path / "c", log=lambda m: None)
    assert info.value.argument == "budget"


def test_cli_names_a_bad_out(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    # In this process, a traceback would be an exception out of main().
    assert main(["reproduce", "fig2", "--budget", "smoke", "--out", tmp_path / "file"]) == 2
    assert "--out" in capsys.readouterr().err
