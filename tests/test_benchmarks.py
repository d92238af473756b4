"""Every script in benchmarks/ runs at a tiny size and prints its figures, so a changed interface
fails here rather than in a measurement months later. Only the output's shape is asserted (its
header, its columns, that numbers are printed), never a figure: machines differ.

Most scripts run in this process (TensorFlow is imported once), their child processes too: the
child script runs as ``__main__`` with the argv ``common.run_child`` would give it, so a caller
and its child that disagree on arguments fail as they would apart. ``train_throughput.py``
keeps its real child processes, to cover ``common.run_child`` itself.
"""

import contextlib
import importlib.util
import io
import json
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, cli_env

BENCH = ROOT / "benchmarks"
NUMBER = r"-?[\d,]+(?:\.\d+)?(?:e[-+]?\d+)?"


def load_module(monkeypatch, path, name):
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path))
    monkeypatch.setitem(sys.modules, name, module)
    module.__spec__.loader.exec_module(module)
    return module


@pytest.fixture
def common(monkeypatch):
    """benchmarks/common.py as the scripts import it (``import common``), removed after the
    test with every path the scripts add to ``sys.path``."""
    monkeypatch.syspath_prepend(str(BENCH))
    return load_module(monkeypatch, BENCH / "common.py", "common")


@pytest.fixture
def script(monkeypatch, common):
    """Loads a benchmark script by its path under benchmarks/ as a module."""
    def load(relative):
        path = BENCH / relative
        monkeypatch.syspath_prepend(str(path.parent))
        return load_module(monkeypatch, path, "benchmark_" + path.stem)

    return load


def run_as_main(monkeypatch, argv):
    """Run the script ``argv[0]`` here as ``__main__`` with ``sys.argv`` = ``argv``, as
    ``python ARGV`` would; returns what it printed."""
    argv = [str(a) for a in argv]
    out = io.StringIO()
    with monkeypatch.context() as m:
        m.setattr(sys, "argv", argv)
        m.syspath_prepend(str(Path(argv[0]).parent))
        with contextlib.redirect_stdout(out):
            try:
                runpy.run_path(argv[0], run_name="__main__")
            except SystemExit as exit:
                assert exit.code in (None, 0), f"{argv} exited with {exit.code}"
    return out.getvalue()


@pytest.fixture
def children_here(monkeypatch, common):
    """``common.run_child`` without the process: the child script runs here as ``__main__``
    with the same argv, and its last stdout line is read as JSON. The matmul peak is measured
    briefly: its figure is not under test."""
    def run_here(args, python=None, timeout=None):
        assert python in (None, sys.executable), f"{python}: only this interpreter runs here"
        return json.loads(run_as_main(monkeypatch, args).strip().splitlines()[-1])

    monkeypatch.setattr(common, "run_child", run_here)
    monkeypatch.setattr(common, "MATMUL_SECONDS", 0.01)
    return run_here


def table(text, columns):
    """The rows under the header line of ``common.print_table``'s table with ``columns``."""
    lines = text.splitlines()
    header = [i for i, line in enumerate(lines) if line.split() == columns]
    assert header, f"no table with columns {columns} in:\n{text}"
    # Every row is padded to the header's width; the first line that is not ends the table.
    width = len(lines[header[0]])
    rows = []
    for line in lines[header[0] + 2:]:
        if len(line) != width:
            break
        rows.append(line)
    assert rows, text
    return rows


def test_train_throughput_in_child_processes(script, capsys):
    script("train_throughput.py").main(
        ["--configs", "relu", "--xla", "off", "--epochs", "2", "--train-examples", "256",
         "--matmul-seconds", "0.01"])
    out = capsys.readouterr().out
    assert re.search(rf"matmul peak float32 {NUMBER} GFLOP/s, bfloat16 {NUMBER} \(TensorFlow\), "
                     rf"{NUMBER} \(XLA\); 2 epochs of 256 MNIST images", out), out
    columns = ["config", "xla", "mixed_precision", "batch", "optimizer", "steps_per_execution",
               "examples_per_second", "median_examples_per_second", "peak_rss_mib",
               "matmul_bound_examples_per_second", "fraction_of_bound"]
    [row] = table(out, columns)
    assert re.fullmatch(rf"\s*relu\s+off\s+none\s+128\s+adam\s+2(\s+{NUMBER}){{5}}", row), row


def test_log_likelihood(script, children_here, capsys):
    script("log_likelihood.py").main(["--examples", "20", "--samples", "10", "--batch-size",
                                      "10"])
    out = capsys.readouterr().out
    assert re.search(rf"float32 matmul peak {NUMBER} GFLOP/s", out), out
    assert re.search(r"log p\(x\), k = 10, 20 MNIST test images \(0\.2% of the test set\), "
                     r"model paper \(784-500-20\), XLA off:", out), out
    assert re.search(rf"{NUMBER} s \({NUMBER} ms per image; {NUMBER} s for all 10,000\)", out)
    assert re.search(rf"mean log p\(x\) {NUMBER} nats", out), out


def test_memory(script, capsys):
    script("memory.py").main(["--epochs", "2", "--train-examples", "256", "--xla", "off"])
    out = capsys.readouterr().out
    assert re.findall(rf"epoch +(\d+): RSS +{NUMBER} MiB", out) == ["1", "2"], out
    assert re.search(rf"growth from the end of epoch 2 to the end of epoch 2: \+?{NUMBER} MiB",
                     out), out


def test_compare_runs_tfvae_and_skips_missing_peers(script, children_here, capsys, tmp_path):
    script("compare/run.py").main(
        ["--rounds", "1", "--epochs", "2", "--train-examples", "256",
         "--likelihood-examples", "20", "--likelihood-samples", "10",
         "--torch-python", str(tmp_path / "no-such-python")])
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipping")]
    assert len(skipped) == 1 and "PyTorch and Pythae" in skipped[0], captured.err
    out = captured.out
    assert re.search(rf"round 1: tfvae {NUMBER} ex/s, keras\.io way {NUMBER} ex/s\n", out), out
    assert re.search(rf"log p\(x\), k = 10, 20 test images, seconds:\nround 1: tfvae {NUMBER} s",
                     out), out
    assert re.search(rf"training: tfvae / keras\.io way speed: {NUMBER} \(per round "
                     rf"\[{NUMBER}\]\)", out), out


def test_compare_resnet_runs_tfvae_and_skips_missing_pytorch(script, children_here, capsys,
                                                              tmp_path):
    script("compare/run.py").main(
        ["--body", "resnet", "--rounds", "1", "--epochs", "2", "--train-examples", "128",
         "--torch-python", str(tmp_path / "no-such-python")])
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipping")]
    assert len(skipped) == 1 and "skipping PyTorch:" in skipped[0], captured.err
    out = captured.out
    assert re.search(rf"training the residual body, examples/s .*\nround 1: tfvae {NUMBER} "
                     rf"ex/s\n", out), out
    # A count, not a timing: torch_resnet_vae.py builds this network by hand and must match it.
    assert re.search(r"parameters: tfvae 210,134; tfvae's XLA off", out), out
    assert "log p(x)" not in out, out


def test_step_profile(script, children_here, capsys):
    module = script("step_profile.py")
    module.main(["--repeats", "1", "--epochs", "2", "--train-examples", "256"])
    out = capsys.readouterr().out
    assert re.search(rf"float32 matmul peak {NUMBER} GFLOP/s: the step's bound is {NUMBER} ms "
                     r"\(128 examples, 784-400-20 ReLU\)", out), out
    rows = table(out, ["variant", "ms_per_step", "difference_from_step_ms", "examples_per_second",
                       "fraction_of_bound"])
    assert [re.match(r"\s*(\D+?)\s+-?\d", row).group(1) for row in rows] == list(module.VARIANTS)


def test_prior_collapse(script, children_here, capsys):
    script("prior_collapse.py").main(["--epochs", "1", "--train-examples", "200"])
    out = capsys.readouterr().out
    for warmup in (0, 2, 20):
        assert re.search(rf"warm-up {warmup} epochs: epoch 1 bound {NUMBER} KL {NUMBER} active "
                         r"\d+", out), out
    assert re.search(rf"reconstruction after 2 steps: {{'vamp': {NUMBER}, 'normal': {NUMBER}}}",
                     out), out
    for prior in ("vamp", "normal"):
        assert re.search(rf"{prior}: step 0 KL {NUMBER} sd {NUMBER}; step 2 KL", out), out


def test_conditional(script, children_here, capsys, tmp_path):
    script("conditional.py").main(["--epochs", "1", "--train-examples", "256", "--out",
                                   str(tmp_path)])
    out = capsys.readouterr().out
    rows = table(out, ["latent_dim", "epochs", "test_elbo", "active_units",
                       "classifier_on_real_test", "classifier_on_samples", "seconds", "figure"])
    assert [row.split()[:2] for row in rows] == [["2", "1"], ["20", "1"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "conditional.json", "conditional_samples_2.png", "conditional_samples_20.png"]
    assert len(json.loads((tmp_path / "conditional.json").read_text())["runs"]) == 2


def test_iwae_gradients(script, children_here, capsys, tmp_path):
    script("iwae_gradients.py").main(["--epochs", "1", "--train-examples", "200",
                                      "--test-examples", "10", "--draws", "2", "--out",
                                      str(tmp_path)])
    out = capsys.readouterr().out
    rows = table(out, ["k", "gradient", "epochs", "test_bound", "test_log_px",
                       "test_log_px_stderr", "encoder_snr", "train_seconds"])
    assert [row.split()[:3] for row in rows] == [
        ["5", "standard", "1"], ["5", "dreg", "1"], ["50", "standard", "1"], ["50", "dreg", "1"]]
    assert (tmp_path / "iwae_gradients.json").is_file()


def test_training_controls(script, children_here, capsys, tmp_path):
    figure = tmp_path / "beta_latents.png"
    script("training_controls.py").main(["--epochs", "2", "--betas", "1", "--train-examples",
                                         "256", "--figure", str(figure), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    rows = table(out, ["variant", "beta", "test_elbo", "test_kl", "active_units", "seconds",
                       "kl_per_dimension"])
    assert [re.match(r"\s*(\D+?)\s+(\d\S*)", row).groups() for row in rows] == [
        ("none", "1.000"), ("warm-up", "1.000"), ("free bits", "1.000")]
    for beta in (1, 4):
        assert re.search(rf"2-D latent, beta {beta}: test ELBO {NUMBER}, active units \d", out)
    assert figure.is_file() and (tmp_path / "training_controls.json").is_file()


def test_tune_vampprior(script, capsys, tmp_path):
    pytest.importorskip("optuna")
    assert script("tune_vampprior.py").main(
        ["--epochs", "1", "--train-examples", "200", "--test-examples", "50", "--trials", "1",
         "--held-out", "10", "--k", "5", "--runs", str(tmp_path / "runs"), "--out",
         str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"processor: .+, \d+ cores; search of 1 trials", out), out
    rows = table(out, ["run", "kl_warmup_epochs", "best_test_elbo", "nll", "nll_stderr"])
    assert [re.match(r"\s*(\D+?)\s+\d", row).group(1) for row in rows] == [
        "search's best", "hand-picked"]
    assert re.search(rf"hand-picked\s+20\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}$", rows[1])
    report = json.loads((tmp_path / "tune_vampprior.json").read_text())
    assert [t["state"] for t in report["trials"]] == ["complete"]


def test_likelihood_table(script, children_here, capsys, tmp_path):
    assert script("likelihood_table.py").main(
        ["--budget", "cpu", "--minutes", "0.01", "--models", "vae", "resnet_groups",
         "--train-examples", "200", "--test-examples", "20", "--k", "10",
         "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"VAE, one layer, k=1: NLL {NUMBER} ± {NUMBER} after 1 epochs", out), out
    assert re.search(rf"ResNet VAE, 6 latent groups .*: NLL {NUMBER} ± {NUMBER} after 1 epochs",
                     out), out
    vae, groups = table(out, ["model", "epochs", "train_minutes", "nll", "nll_stderr",
                              "published", "source"])
    assert re.search(rf"VAE, one layer, k=1\s+1\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+86\.76", vae)
    config = json.loads((tmp_path / "cpu" / "resnet_groups" / "config.json").read_text())
    assert config["model"]["latent_groups"] == 6 and config["train"]["clip_norm"] == 200, config
    assert {p.name for p in (tmp_path / "cpu").iterdir()} == {
        "vae", "resnet_groups", "likelihood_table.csv", "likelihood_table.md"}


def test_baselines_throughput(script, capsys, tmp_path):
    script("baselines_throughput.py").main(["--figure", "3", "--steps", "25", "--rounds", "1",
                                            "--out", str(tmp_path)])
    out = capsys.readouterr().out
    for method in ("aevb", "wake_sleep", "mcem"):
        for variant in ("1 step/call", "25 steps/call", "25 steps/call, XLA"):
            assert re.search(rf"{method} +{re.escape(variant)}: +{NUMBER} examples/s, +{NUMBER} "
                             rf"samples evaluated/s, {NUMBER} x one step per call", out), out
    assert (tmp_path / "baselines_throughput_fig3.json").is_file()


def test_step_size_pilots(monkeypatch, common):
    out = run_as_main(monkeypatch, [BENCH / "step_size_pilots.py", "aevb", "mnist", "2", "20",
                                    "200", "0", "--stretches", "200,400"])
    assert "seed 0: mean training score over samples 0-200, 200-400\n" in out, out
    for lr in ("0.01", "0.02", "0.1"):
        assert re.search(rf"step size +{lr}: +{NUMBER}, +{NUMBER}\n", out), out


def test_mcem_adaptation(monkeypatch, common):
    from tfvae.paper import loop

    monkeypatch.setattr(loop, "MCEM_OPTIONS", loop.MCEM_OPTIONS)  # the script sets its rate
    out = run_as_main(monkeypatch, [BENCH / "mcem_adaptation.py", "2.0", "2",
                                    "--train-examples", "100"])
    lines = out.splitlines()
    assert lines[0] == ("adaptation rate 2.0: epoch, acceptance, log p(x, z), median step, "
                        "mean |z|"), out
    assert [re.fullmatch(rf" +(\d+)(?: +{NUMBER}){{4}}", line).group(1) for line in lines[1:]] \
        == ["1", "2"], out


def test_hmc_settings(script, capsys):
    script("hmc_settings.py").main(["--train-samples", "2000", "--test-examples", "10"])
    out = capsys.readouterr().out
    for name in script("hmc_settings.py").SETTINGS:
        assert re.search(rf"{re.escape(name)}: log p\(x\) +{NUMBER}, acceptance {NUMBER}, "
                         rf"+{NUMBER} s", out), out
    assert re.search(rf"importance sampling, k = 1000: log p\(x\) +{NUMBER}, +{NUMBER} s", out), out


def test_wake_sleep_plateau(script, capsys):
    assert script("wake_sleep_plateau.py").main(
        ["--samples", "200", "--points", "1", "--pretrain-samples", "200", "--starts", "sd0.01",
         "pretrained"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"one Gaussian per pixel .*: {NUMBER} nats per face", out), out
    assert re.search(rf"AEVB decoder after 200 samples: bound {NUMBER}", out), out
    for start in ("sd0.01", "pretrained"):
        for done in (0, 200):
            assert re.search(rf"{start} +{done} samples  bound +{NUMBER}  dec_z {NUMBER}  enc_x "
                             rf"{NUMBER}  sleep_grad {NUMBER}", out), out


def test_serving(script, capsys):
    assert script("serving.py").main(["--repeats", "3", "--batches", "1", "--signatures",
                                      "encode", "sample", "--seconds", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "untrained 784-500-20 MLP" in out, out
    paths = re.findall(rf"^(keras eager|keras tf\.function|saved_model|tf1 session) +{NUMBER} +"
                       rf"{NUMBER} +{NUMBER}$", out, re.M)
    assert paths == ["keras eager", "keras tf.function", "saved_model", "tf1 session"], out
    batches = re.findall(rf"^(encode|sample) +(\d+) +{NUMBER} +{NUMBER} +{NUMBER}$", out, re.M)
    assert batches == [(s, str(b)) for s in ("encode", "sample")
                       for b in script("serving.py").BATCH_SIZES], out


@pytest.fixture
def recorder(tmp_path):
    """An executable that stands for an interpreter or a command: it records its arguments, one
    JSON list a line, in the returned log, and prints ``{}``."""
    log = tmp_path / "calls.jsonl"
    stub = tmp_path / "record"
    stub.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import json, sys; "
                    f"open(sys.argv[1], \"a\").write(json.dumps(sys.argv[2:]) + \"\\n\"); "
                    f"print(\"{{}}\")' {log} \"$@\"\n")
    stub.chmod(0o755)
    return stub, log


def recorded(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("name", ["gpu.sh", "applications_runs.sh"])
def test_shell_scripts_parse(name):
    import subprocess

    check = subprocess.run(["bash", "-n", BENCH / name], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_gpu_script_runs_each_benchmark(recorder, script, children_here, capsys, tmp_path,
                                        monkeypatch):
    """gpu.sh's commands, recorded by a stand-in interpreter, then run here with tiny sizes
    added (argparse takes a flag's last value), so each flag it passes must still exist."""
    import subprocess

    stub, log = recorder
    done = subprocess.run(["bash", BENCH / "gpu.sh", tmp_path / "results"], capture_output=True,
                          text=True, env={**cli_env(), "PYTHON": str(stub)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "results" / "gpu.log").is_file()
    tiny = {"benchmarks/train_throughput.py": ["--configs", "relu", "--xla", "off", "--epochs",
                                               "2", "--train-examples", "256"],
            "benchmarks/log_likelihood.py": ["--examples", "20", "--samples", "10",
                                             "--batch-size", "10", "--chunk-size", "10"],
            "benchmarks/likelihood_table.py": ["--minutes", "0.01", "--train-examples", "100",
                                               "--test-examples", "10", "--k", "4"]}
    calls = [call for call in recorded(log) if call[0] != "-c"]
    assert [call[0] for call in calls] == ["benchmarks/train_throughput.py"] * 3 + [
        "benchmarks/log_likelihood.py", "benchmarks/likelihood_table.py"], calls
    for path, *args in calls:
        capsys.readouterr()
        done = script(Path(path).relative_to("benchmarks")).main(args + tiny[path])
        out = capsys.readouterr().out
        if "likelihood_table" in path:
            assert done == 0 and "ResNet VAE, 6 latent groups" in out, out
            continue
        report = json.loads(out)
        assert "results" in report if "throughput" in path else "seconds" in report, report


def test_applications(recorder, script, capsys, tmp_path):
    """applications_runs.sh's trainings, recorded by a stand-in ``tfvae``, run here for one
    epoch on 1,000 images; then every section of applications.py on them."""
    import subprocess

    from tfvae.cli import main as tfvae

    stub, log = recorder
    runs = tmp_path / "runs"
    done = subprocess.run(["bash", BENCH / "applications_runs.sh", runs], capture_output=True,
                          text=True, env={**cli_env(), "TFVAE": str(stub)})
    assert done.returncode == 0, done.stdout + done.stderr
    calls = recorded(log)
    assert [call[0] for call in calls] == ["train"] * 5, calls
    for call in calls:
        assert tfvae(call + ["--epochs", "1", "--train-examples", "1000", "--test-examples",
                             "100"]) == 0
    capsys.readouterr()
    script("applications.py").main(["--runs", str(runs), "--out", str(tmp_path / "out"),
                                    "--train-examples", "1000", "--test-examples", "100",
                                    "--steps", "2", "--seeds", "1"])
    out = capsys.readouterr().out
    for section in ("scatter", "probe", "finetune", "synthesis", "augment", "compress"):
        assert f"## {section}\n" in out, out
    assert re.search(rf"\| vae N\(0, I\) \| {NUMBER} ± {NUMBER} \|", out), out
    assert re.search(rf"\| 100 \| {NUMBER} \| {NUMBER} \| {NUMBER} \|", out), out
    assert re.search(rf"\| VAE, 8 bits x 20 dims, gaussian \| {NUMBER} \| {NUMBER} \| {NUMBER} \|",
                     out), out
    assert set(json.loads((tmp_path / "out" / "applications.json").read_text())) == {
        "scatter", "probe", "finetune", "synthesis", "augment", "compress"}
    assert {p.name for p in (tmp_path / "out").glob("*.png")} == {
        "latent_scatter.png", "random_points.png", "interpolate_mnist.png",
        "interpolate_frey.png", "augment.png", "compression.png"}


def test_anomaly_runs_tfvae_and_skips_missing_peers(script, children_here, shared_data, capsys,
                                                    tmp_path):
    script("anomaly.py").main(
        ["--datasets", "38_thyroid", "--seeds", "0", "--max-rows", "300", "--epochs", "1",
         "--data-dir", str(shared_data / "adbench"),
         "--peers-python", str(tmp_path / "no-such-python"), "--out", str(tmp_path)])
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipping")]
    assert len(skipped) == 1 and "IsolationForest, ECOD, PyOD_VAE" in skipped[0], captured.err
    out = captured.out
    assert re.search(r"38_thyroid: 300 training rows, 1,132 test rows \(28 anomalies\); tfvae 1 "
                     r"epochs \(3 steps\)", out), out
    rows = table(out, ["contender", "roc_auc", "roc_auc_sd", "average_precision",
                       "average_precision_sd", "seconds"])
    assert [row.split()[0] for row in rows] == ["tfvae_elbo", "tfvae_importance"], out
    for row in rows:
        auc, _, ap, _, seconds = (float(cell.replace(",", "")) for cell in row.split()[1:])
        assert 0 <= auc <= 1 and 0 <= ap <= 1 and seconds > 0, row
    report = json.loads((tmp_path / "anomaly.json").read_text())
    for contender in ("tfvae_elbo", "tfvae_importance"):
        mean = report["summary"]["mean"][contender]
        assert 0 <= mean["roc_auc"] <= 1 and 0 <= mean["average_precision"] <= 1, mean


def test_imputation_runs_tfvae_and_mean_and_skips_missing_peers(script, children_here,
                                                                 shared_data, capsys, tmp_path):
    script("imputation.py").main(
        ["--datasets", "38_thyroid", "--seeds", "0", "--rates", "0.5", "--max-rows", "300",
         "--epochs", "1", "--impute-samples", "20", "--data-dir", str(shared_data / "adbench"),
         "--peers-python", str(tmp_path / "no-such-python"), "--out", str(tmp_path)])
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipping")]
    assert len(skipped) == 1 and "KNNImputer, IterativeImputer" in skipped[0], captured.err
    out = captured.out
    assert re.search(r"38_thyroid: 300 rows; tfvae 1 epochs \(5 steps\)", out), out
    rows = table(out, ["contender", "rate", "rmse", "rmse_sd", "seconds"])
    assert [row.split()[0] for row in rows] == ["tfvae", "mean"], out
    for row in rows:
        rate, rmse, _, seconds = (float(cell.replace(",", "")) for cell in row.split()[1:])
        # Standardized columns: filling with anything near the mean gives an RMSE near 1.
        assert rate == 0.5 and 0.3 < rmse < 3 and seconds >= 0, row
    report = json.loads((tmp_path / "imputation.json").read_text())
    assert report["contenders"] == ["tfvae", "mean"] and len(report["runs"]) == 2
    assert all(run["removed"] > 0 for run in report["runs"])
    for contender in ("tfvae", "mean"):
        assert 0.3 < report["summary"]["0.5"]["mean"][contender]["rmse"] < 3


def test_imputation_masks_remove_the_rate_and_never_a_whole_row(script):
    imputation = script("imputation.py")
    removed = imputation.mask((4000, 20), 0.5, 0, "t")
    assert abs(removed.mean() - 0.5) < 0.01
    # Two columns: a quarter of the rows would lose both.
    assert not imputation.mask((4000, 2), 0.5, 0, "t").all(axis=1).any()
    np.testing.assert_array_equal(removed, imputation.mask((4000, 20), 0.5, 0, "t"))
    assert not np.array_equal(removed, imputation.mask((4000, 20), 0.5, 1, "t"))


def test_missing_mnist_scores_both_models_and_writes_the_grid(script, children_here,
                                                              shared_data, capsys, tmp_path):
    script("missing_mnist.py").main(
        ["--train-examples", "200", "--epochs", "1", "--test-examples", "20", "--is-samples",
         "10", "--impute-samples", "10", "--data-dir", str(shared_data), "--out",
         str(tmp_path), "--figures", str(tmp_path)])
    out = capsys.readouterr().out
    rows = table(out, ["training_images", "elbo", "elbo_se", "log_px", "log_px_se",
                       "fit_seconds"])
    assert [row.split()[0] for row in rows] == ["half_missing", "complete"], out
    for row in rows:
        elbo, _, log_px, _, _ = (float(c.replace(",", "")) for c in row.split()[-5:])
        # Nats per binarized image: below 0, above an untrained model's 784 log 2 ~ 543.
        assert -700 < elbo < 0 and -700 < log_px < 0, row
    rows = table(out, ["imputation", "error_rate", "log_likelihood"])
    assert [row.split()[0] for row in rows] == ["tfvae", "pixel_mean"], out
    for row in rows:
        error_rate, log_likelihood = (float(c) for c in row.split()[1:])
        assert 0 <= error_rate <= 1 and log_likelihood < 0, row
    report = json.loads((tmp_path / "missing_mnist.json").read_text())
    assert set(report["runs"]) == {"holed", "complete"}
    png = (tmp_path / "missing_mnist_imputations.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_training_schedules(script, children_here, capsys, tmp_path):
    figure = tmp_path / "early_stopping.png"
    assert script("training_schedules.py").main(
        # 500 images: 10 steps, enough for the stretched schedule's 8 stages of a step or more.
        ["--epochs", "2", "--train-examples", "500", "--test-examples", "20", "--k", "5",
         "--es-epochs", "3", "--patience", "1", "--es-train-examples", "100",
         "--es-test-examples", "50", "--eval-draws", "2", "--figure", str(figure), "--out",
         str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"processor: .+, \d+ cores", out), out
    rows = table(out, ["schedule", "epochs", "first_rate", "last_rate", "test_elbo",
                       "test_log_px", "test_log_px_stderr", "train_seconds",
                       "train_wall_seconds"])
    assert [row.split()[:2] for row in rows] == [
        ["constant", "2"], ["iwae", "2"], ["iwae-stretched", "2"]]
    rows = table(out, ["run", "epochs", "best_epoch", "best_test_elbo", "last_test_elbo",
                       "returned_test_elbo", "returned_test_elbo_stderr", "train_seconds",
                       "wall_seconds"])
    assert [re.match(r"\s*(no early stopping|patience \d+)\s", row).group(1)
            for row in rows] == ["no early stopping", "patience 1"]
    assert re.search(rf"stopped at epoch \d \(best epoch \d\): \d epochs and {NUMBER} s saved",
                     out), out
    report = json.loads((tmp_path / "training_schedules.json").read_text())
    constant, iwae, stretched = report["schedules"]
    # The rates each schedule gives at its first and last step: the IWAE schedule's second
    # stage begins at epoch 1; the stretched one reaches the paper's last rate, 1e-4.
    assert constant["first_rate"] == constant["last_rate"] == pytest.approx(1e-3)
    assert iwae["last_rate"] == pytest.approx(1e-3 * 10 ** (-1 / 7), rel=1e-5)
    assert stretched["last_rate"] == pytest.approx(1e-4, rel=1e-5)
    for row in report["schedules"]:
        assert row["test_log_px"] < 0 and row["test_elbo"] < 0 and row["test_log_px_stderr"] > 0
    early = report["early_stopping"]
    assert early["full"]["epochs"] == 3 and early["full"]["stopped_early"] is None
    assert early["stopped"]["returned_model_is_best_checkpoint"]
    assert (figure.is_file() and (tmp_path / "training_schedules.txt").read_text()
            .startswith("processor: "))


def test_streaming(script, children_here, capsys, tmp_path):
    streaming = script("streaming.py")
    tiny = ["--cache", str(tmp_path), "--image-size", "16"]
    streaming.main([*tiny, "memory", "--sizes", "50", "--storages", "stream,prepared,memory",
                    "--steps", "2"])
    out = capsys.readouterr().out
    assert re.search(r"processor: .+, \d+ cores", out), out
    rows = table(out, ["n", "storage", "steps", "of_epoch", "peak_rss_mib", "first_step_s",
                       "examples_per_second", "seconds", "prepare_s"])
    assert [row.split()[:2] for row in rows] == [["50", "stream"], ["50", "prepared"],
                                                 ["50", "memory"]]
    for row in rows:
        assert re.fullmatch(rf"\s*50\s+\w+\s+\d+(\s+{NUMBER}){{3,6}}\s*", row), row

    streaming.main([*tiny, "throughput", "--rounds", "1", "--epochs", "2",
                    "--train-examples", "256", "--xla", "off"])
    out = capsys.readouterr().out
    assert re.search(rf"round 1: stream \(prepared\) {NUMBER} ex/s, memory {NUMBER} ex/s", out)
    assert re.search(rf"stream / memory: {NUMBER} \(medians {NUMBER} and {NUMBER} ex/s", out), out

    streaming.main([*tiny, "decode", "--images", "50", "--batches", "2",
                    "--train-examples", "40", "--rounds", "1"])
    out = capsys.readouterr().out
    assert re.search(rf"round 1: decoded {NUMBER} images/s, conv training step {NUMBER} "
                     r"examples/s", out), out
    assert re.search(rf"decoded / training appetite: {NUMBER}", out), out


def test_colour_images_trains_scores_and_draws_each_set(script, children_here, capsys,
                                                         tmp_path):
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 120, 3), np.uint8)).save(
        photos / "one.jpg")
    out_dir = tmp_path / "out"
    script("colour_images.py").main(["--minutes", "0.01", "--images", "20", "--photos",
                                     str(photos), "--models", "resnet", "--cache",
                                     str(tmp_path / "cache"), "--out", str(out_dir)])
    out = capsys.readouterr().out
    columns = ["model", "epochs", "minutes", "mse", "psnr_db", "mean_image_mse",
               "test_bound_nats", "bits_per_dim"]
    for set_name in ("shapes", "photos"):
        assert f"\n{set_name} (" in out, out
        for kind in ("reconstructions", "samples"):
            with Image.open(out_dir / set_name / f"resnet-{kind}.png") as grid:
                assert grid.mode == "RGB"
    rows = table(out.split("\nphotos (")[1], columns)
    assert re.fullmatch(rf"\s*resnet\s+\d+(\s+{NUMBER}){{6}}\s*", rows[0]), rows
    crops = sorted((tmp_path / "cache").glob("crops20-*/*.jpg"))
    assert len(crops) == 20
    sides = {Image.open(p).size for p in crops}
    assert all(w == h and 64 <= w <= 90 for w, h in sides) and len(sides) > 1, sides
    report = json.loads((out_dir / "colour_images.json").read_text())
    assert set(report["sets"]) == {"shapes", "photos"}
