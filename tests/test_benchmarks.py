"""Every script in benchmarks/ runs at a tiny size and prints its figures, so a changed interface
fails here rather than in a measurement months later. Only the output's shape is asserted (its
header, its columns, that numbers are printed), never a figure: machines differ.

Most scripts run in this process (TensorFlow is imported once), their child processes too: the
child script runs as ``__main__`` with the argv ``common.run_child`` would give it, so a caller
and its child that disagree on arguments fail as they would apart. ``train_throughput.py``
keeps a real child process for its training, to cover ``common.run_child`` itself.
"""

import json
import re
from pathlib import Path

import pytest

from conftest import BENCH, NUMBER, cli_env, recorded, run_as_main, skip_line, table



def test_train_throughput_in_child_processes(script, common, capsys, monkeypatch):
    real_child = common.run_child

    def matmul_here(args, **kwargs):
        """The training child in a real process covers ``run_child``; the matmul one runs
        here, which saves a second TensorFlow import."""
        if "--matmul-child" not in args:
            return real_child(args, **kwargs)
        return json.loads(run_as_main(monkeypatch, args).strip().splitlines()[-1])

    monkeypatch.setattr(common, "run_child", matmul_here)
    # Mixed precision through a real child: gpu.sh's float16 and bfloat16 runs are only
    # parsed in test_gpu_script_runs_each_benchmark.
    script("train_throughput.py").main(
        ["--configs", "relu", "--xla", "off", "--epochs", "1", "--train-examples", "256",
         "--matmul-seconds", "0.01", "--matmul-sizes", "256", "--mixed-precision", "bfloat16"])
    out = capsys.readouterr().out
    assert re.search(rf"matmul peak float32 {NUMBER} GFLOP/s, bfloat16 {NUMBER} \(TensorFlow\), "
                     rf"{NUMBER} \(XLA\); 1 epochs of 256 MNIST images", out), out
    columns = ["config", "xla", "mixed_precision", "batch", "optimizer", "steps_per_execution",
               "examples_per_second", "median_examples_per_second", "peak_rss_mib",
               "matmul_bound_examples_per_second", "fraction_of_bound"]
    [row] = table(out, columns)
    assert re.fullmatch(rf"\s*relu\s+off\s+bfloat16\s+128\s+adam\s+2(\s+{NUMBER}){{5}}", row), row


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
        ["--rounds", "1", "--epochs", "1", "--train-examples", "256",
         "--likelihood-examples", "20", "--likelihood-samples", "10",
         "--torch-python", str(tmp_path / "no-such-python")])
    captured = capsys.readouterr()
    assert "PyTorch and Pythae" in skip_line(captured.err)
    out = captured.out
    assert re.search(rf"round 1: tfvae {NUMBER} ex/s, keras\.io way {NUMBER} ex/s\n", out), out
    assert re.search(rf"log p\(x\), k = 10, 20 test images, seconds:\nround 1: tfvae {NUMBER} s",
                     out), out
    assert re.search(rf"training: tfvae / keras\.io way speed: {NUMBER} \(per round "
                     rf"\[{NUMBER}\]\)", out), out


def test_compare_resnet_runs_tfvae_and_skips_missing_pytorch(script, children_here, capsys,
                                                              tmp_path):
    script("compare/run.py").main(
        ["--body", "resnet", "--rounds", "1", "--epochs", "1", "--train-examples", "128",
         "--torch-python", str(tmp_path / "no-such-python")])
    captured = capsys.readouterr()
    assert "skipping PyTorch:" in skip_line(captured.err)
    out = captured.out
    assert re.search(rf"training the residual body, examples/s .*\nround 1: tfvae {NUMBER} "
                     rf"ex/s\n", out), out
    # A count, not a timing: torch_resnet_vae.py builds this network by hand and must match it.
    assert re.search(r"parameters: tfvae 210,134; tfvae's XLA off", out), out
    assert "log p(x)" not in out, out


def test_step_profile(script, children_here, capsys):
    module = script("step_profile.py")
    module.main(["--repeats", "1", "--epochs", "2", "--train-examples", "128", "--xla", "off"])
    out = capsys.readouterr().out
    assert re.search(rf"float32 matmul peak {NUMBER} GFLOP/s: the step's bound is {NUMBER} ms "
                     r"\(128 examples, 784-400-20 ReLU, XLA off\)", out), out
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
    script("conditional.py").main(["--epochs", "1", "--train-examples", "256",
                                   "--classifier-steps", "10", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    rows = table(out, ["latent_dim", "epochs", "test_elbo", "active_units",
                       "classifier_on_real_test", "classifier_on_samples", "seconds", "figure"])
    assert [row.split()[:2] for row in rows] == [["2", "1"], ["20", "1"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "conditional.json", "conditional_samples_2.png", "conditional_samples_20.png"]
    assert len(json.loads((tmp_path / "conditional.json").read_text())["runs"]) == 2


def test_iwae_gradients(script, children_here, capsys, tmp_path):
    script("iwae_gradients.py").main(["--epochs", "1", "--train-examples", "200",
                                      "--test-examples", "10", "--test-bound-examples", "10",
                                      "--k", "10", "--draws", "2", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    rows = table(out, ["k", "gradient", "epochs", "test_bound", "test_log_px",
                       "test_log_px_stderr", "encoder_snr", "train_seconds"])
    assert [row.split()[:3] for row in rows] == [
        ["5", "standard", "1"], ["5", "dreg", "1"], ["50", "standard", "1"], ["50", "dreg", "1"]]
    assert (tmp_path / "iwae_gradients.json").is_file()


def test_training_controls(script, children_here, capsys, tmp_path):
    figure = tmp_path / "beta_latents.png"
    script("training_controls.py").main(["--epochs", "1", "--betas", "1", "--train-examples",
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
        ["--budget", "cpu", "--minutes", "0.01", "--models", "vae", "--train-examples", "200",
         "--test-examples", "20", "--k", "10", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"VAE, one layer, k=1: NLL {NUMBER} ± {NUMBER} after 1 epochs", out), out
    [row] = table(out, ["model", "epochs", "train_minutes", "nll", "nll_stderr", "published",
                        "source"])
    assert re.search(rf"VAE, one layer, k=1\s+1\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+86\.76", row)
    assert {p.name for p in (tmp_path / "cpu").iterdir()} == {
        "vae", "likelihood_table.csv", "likelihood_table.md"}


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


@pytest.mark.parametrize("name", ["gpu.sh", "applications_runs.sh"])
def test_shell_scripts_parse(name):
    import subprocess

    check = subprocess.run(["bash", "-n", BENCH / name], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_gpu_script_runs_each_benchmark(recorder, script, common, children_here, capsys,
                                        tmp_path, monkeypatch):
    """gpu.sh's commands, recorded by a stand-in interpreter, then run here with tiny sizes
    added (argparse takes a flag's last value), so each flag it passes must still exist. The
    training-throughput runs differ only in ``--mixed-precision``: the first runs, the others
    are parsed (a mixed-precision run is test_train_throughput_in_child_processes's)."""
    import subprocess

    stub, log = recorder
    done = subprocess.run(["bash", BENCH / "gpu.sh", tmp_path / "results"], capture_output=True,
                          text=True, env={**cli_env(), "PYTHON": str(stub)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "results" / "gpu.log").is_file()
    tiny = {"benchmarks/train_throughput.py": ["--configs", "relu", "--xla", "off", "--epochs",
                                               "1", "--train-examples", "256"],
            "benchmarks/log_likelihood.py": ["--examples", "20", "--samples", "10",
                                             "--batch-size", "10", "--chunk-size", "10"],
            "benchmarks/likelihood_table.py": ["--minutes", "0.01", "--train-examples", "100",
                                               "--test-examples", "10", "--k", "4"]}
    calls = [call for call in recorded(log) if call[0] != "-c"]
    assert [call[0] for call in calls] == ["benchmarks/train_throughput.py"] * 3 + [
        "benchmarks/log_likelihood.py", "benchmarks/likelihood_table.py"], calls
    first, *mixed = (args for path, *args in calls[:3])
    assert [args[-3:] for args in mixed] == [["--mixed-precision", p, "--json"]
                                             for p in ("float16", "bfloat16")], mixed
    assert all(args[:-3] + args[-1:] == first for args in mixed), (first, mixed)

    class Parsed(Exception):
        """Raised by the first child: every argument was accepted."""

    def parsed(*args, **kwargs):
        raise Parsed

    throughput = script("train_throughput.py")
    for args in mixed:
        with monkeypatch.context() as m:
            m.setattr(common, "run_child", parsed)
            with pytest.raises(Parsed):
                throughput.main(args + tiny[calls[0][0]])
    for path, *args in calls[:1] + calls[3:]:
        capsys.readouterr()
        done = script(Path(path).relative_to("benchmarks")).main(args + tiny[path])
        out = capsys.readouterr().out
        if "likelihood_table" in path:  # the hierarchy's row, with its training settings
            assert done == 0 and re.search(
                rf"ResNet VAE, 6 latent groups .*: NLL {NUMBER} ± {NUMBER} after 1 epochs", out)
            config = json.loads(next((tmp_path / "results").glob(
                "likelihood/cpu/resnet_groups/config.json")).read_text())
            assert config["model"]["latent_groups"] == 6 and config["train"]["clip_norm"] == 200
            continue
        report = json.loads(out)
        assert "results" in report if "throughput" in path else "seconds" in report, report
