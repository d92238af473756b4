"""The benchmarks of applications, anomalies, missing values, schedules, streaming and colour
images at a tiny size: ``test_benchmarks.py``'s checks, in a file of their own so that the test
runner's workers share the benchmarks' time."""

import json
import re

import numpy as np
import pytest

from conftest import BENCH, NUMBER, cli_env, recorded, skip_line, table


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
    assert "IsolationForest, ECOD, PyOD_VAE" in skip_line(captured.err)
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
    assert "KNNImputer, IterativeImputer" in skip_line(captured.err)
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

    streaming.main([*tiny, "throughput", "--rounds", "1", "--epochs", "1",
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
                                     str(photos), "--models", "conv", "--cache",
                                     str(tmp_path / "cache"), "--out", str(out_dir)])
    out = capsys.readouterr().out
    columns = ["model", "epochs", "minutes", "mse", "psnr_db", "mean_image_mse",
               "test_bound_nats", "bits_per_dim"]
    for set_name in ("shapes", "photos"):
        assert f"\n{set_name} (" in out, out
        for kind in ("reconstructions", "samples"):
            with Image.open(out_dir / set_name / f"conv-{kind}.png") as grid:
                assert grid.mode == "RGB"
    rows = table(out.split("\nphotos (")[1], columns)
    assert re.fullmatch(rf"\s*conv\s+\d+(\s+{NUMBER}){{5}}\s*", rows[0]), rows
    crops = sorted((tmp_path / "cache").glob("crops20-*/*.jpg"))
    assert len(crops) == 20
    sides = {Image.open(p).size for p in crops}
    assert all(w == h and 64 <= w <= 90 for w, h in sides) and len(sides) > 1, sides
    report = json.loads((out_dir / "colour_images.json").read_text())
    assert set(report["sets"]) == {"shapes", "photos"}
