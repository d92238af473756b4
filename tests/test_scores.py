"""Vectors as data, and anomaly scores with their threshold: the Python API and the commands."""

import csv
import json

import numpy as np
import pytest

from tfvae.cli import main
from tfvae.errors import InputError
from tfvae.evaluation.scores import calibrate_threshold, score
from tfvae.runs import RunDirectory


def _normal_rows(n, seed=0, d=7):
    """Correlated Gaussian rows: a real-valued table no image reader would take (7 columns)."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 2))
    mixing = np.random.default_rng(99).normal(size=(2, d))
    return (latent @ mixing + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


@pytest.fixture(scope="module")
def vector_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("vectors")
    np.savez(root / "rows.npz", x=_normal_rows(1000))
    run_dir = root / "run"
    assert main(["train", "--out", str(run_dir), "--dataset", str(root / "rows.npz"),
                 "--latent-dim", "2", "--hidden", "32", "--epochs", "5", "--batch-size", "50",
                 "--optimizer", "adam", "--learning-rate", "0.01", "--quiet"]) == 0
    return root, run_dir


def test_vectors_of_any_width_are_a_dataset_with_an_unbounded_gaussian(vector_run):
    from tfvae.data import load_dataset

    root, run_dir = vector_run
    dataset = load_dataset(str(root / "rows.npz"))
    assert dataset.image_shape == (7,) and dataset.likelihood == "normal"
    assert dataset.binarize == "none"
    np.testing.assert_array_equal(dataset.x_train, _normal_rows(1000)[:900])  # kept as they are
    config = RunDirectory(run_dir).read_config()
    assert config["model"]["image_shape"] == [7] and config["model"]["likelihood"] == "normal"
    model = RunDirectory(run_dir).load_model()
    rows = _normal_rows(100, seed=1)
    reconstructed = model.reconstruct(rows).numpy()
    assert reconstructed.shape == (100, 7) and model.decoder.likelihood.support == "real"
    # No sigmoid squashes the mean: reconstructions follow rows of either sign beyond [0, 1].
    assert reconstructed.min() < -1 and reconstructed.max() > 1
    assert np.corrcoef(reconstructed.ravel(), rows.ravel())[0, 1] > 0.8
    with pytest.raises(InputError, match="binarize"):
        load_dataset(str(root / "rows.npz"), binarize="static")


def test_scores_are_seeded_and_rank_outliers_above_normal_rows(vector_run):
    _, run_dir = vector_run
    model = RunDirectory(run_dir).load_model()
    normal = _normal_rows(200, seed=1)
    outliers = normal + np.random.default_rng(2).normal(0, 4.0, normal.shape).astype(np.float32)
    first = score(model, normal, seed=3)
    assert first.shape == (200,) and first.dtype == np.float64
    np.testing.assert_array_equal(first, score(model, normal, seed=3))
    assert not np.array_equal(first, score(model, normal, seed=4))
    assert np.median(score(model, outliers)) > np.percentile(score(model, normal), 90)
    # Importance sampling bounds log p(x) more tightly than the ELBO: its scores are lower.
    by_importance = score(model, normal, method="importance", num_samples=64)
    assert by_importance.mean() < first.mean()
    # The ELBO score is minus the mean of the model's per-example ELBO over its draws.
    single = score(model, normal[:5], num_samples=1, seed=0)
    np.testing.assert_allclose(single, -model.elbo(normal[:5], seed=[0, 0]).numpy(), rtol=1e-5)
    draws = [model.elbo(normal[:5], seed=[0, draw]).numpy() for draw in range(3)]
    np.testing.assert_allclose(score(model, normal[:5], num_samples=3, seed=0),
                               -np.mean(draws, axis=0), rtol=1e-5)


def test_the_threshold_flags_at_most_the_chosen_share_of_normal_scores():
    found = calibrate_threshold(np.arange(100.0), 0.05)
    assert found.threshold == 95.0 and found.flags(np.arange(100.0)).sum() == 4
    scores = np.random.default_rng(0).normal(size=1001)
    for rate in (0.01, 0.1, 0.5):
        found = calibrate_threshold(scores, rate)
        assert found.flags(scores).mean() <= rate < found.flags(scores).mean() + 2 / len(scores)
    with pytest.raises(InputError, match="^false_positive_rate: expected"):
        calibrate_threshold(scores, 1.5)
    with pytest.raises(InputError, match="^normal_scores: expected"):
        calibrate_threshold([np.nan, 1.0], 0.1)


def test_threshold_and_score_commands_and_the_export_metadata(vector_run, tmp_path, capsys):
    root, run_dir = vector_run
    np.savez(tmp_path / "normal.npz", x=_normal_rows(300, seed=5))
    rows = _normal_rows(20, seed=6)
    rows[:5] += 12.0  # five outliers
    np.savez(tmp_path / "new.npz", x=rows)
    assert main(["threshold", str(run_dir), "--input", str(tmp_path / "normal.npz"),
                 "--false-positive-rate", "0.02"]) == 0
    kept = json.loads((run_dir / "threshold.json").read_text())
    assert kept["false_positive_rate"] == 0.02 and kept["examples"] == 300
    out = tmp_path / "scores.csv"
    assert main(["score", str(run_dir), "--input", str(tmp_path / "new.npz"), "--out",
                 str(out)]) == 0
    table = list(csv.DictReader(out.open()))
    assert [r["row"] for r in table] == [str(i) for i in range(20)]
    assert all(r["anomaly"] == "1" for r in table[:5])
    assert sum(r["anomaly"] == "1" for r in table[5:]) <= 2
    model = RunDirectory(run_dir).load_model()
    np.testing.assert_allclose([float(r["score"]) for r in table], score(model, rows), rtol=1e-6)
    # Other settings than the threshold's: scores without the flag column, and a warning.
    capsys.readouterr()
    assert main(["score", str(run_dir), "--input", str(tmp_path / "new.npz"), "--out",
                 str(tmp_path / "s2.csv"), "--seed", "9"]) == 0
    assert "anomaly column is left out" in capsys.readouterr().err
    assert "anomaly" not in (tmp_path / "s2.csv").read_text().splitlines()[0]
    assert main(["score", str(run_dir), "--input", str(tmp_path / "new.npz"), "--out",
                 str(out)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["threshold", str(run_dir), "--input", str(tmp_path / "normal.npz"),
                 "--false-positive-rate", "1.5"]) == 2
    assert capsys.readouterr().err.strip().startswith(
        "tfvae threshold: error: --false-positive-rate: expected a finite number > 0 and < 1")
    from tfvae.export.metadata import run_metadata

    assert run_metadata(RunDirectory(run_dir))["anomaly_threshold"]["threshold"] == \
        kept["threshold"]


def test_a_csv_table_trains_and_its_new_rows_are_scored_by_id(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = _normal_rows(400)
    kinds = np.where(rng.random(400) < 0.5, "a", "b")

    def write(path, values, kind, ids):
        lines = ["id,f0,f1,f2,f3,f4,f5,f6,kind,target"]
        lines += [f'"{i}",' + ",".join(f"{v:.5f}" for v in row) + f",{k},{int(k == 'a')}"
                  for i, row, k in zip(ids, values, kind)]
        path.write_text("\n".join(lines) + "\n")

    write(tmp_path / "train.csv", rows, kinds, [f"r{i}" for i in range(400)])
    run_dir = tmp_path / "run"
    assert main(["train", "--out", str(run_dir), "--dataset", str(tmp_path / "train.csv"),
                 "--label-column", "target", "--exclude-columns", "kind", "--latent-dim", "2",
                 "--hidden", "16", "--epochs", "2", "--batch-size", "50", "--quiet"]) == 0
    config = RunDirectory(run_dir).read_config()
    assert [c["name"] for c in config["table_columns"]] == [f"f{i}" for i in range(7)]
    assert {c["type"] for c in config["table_columns"]} == {"real"}
    assert config["data"]["label_column"] == "target" and config["model"]["image_shape"] == [7]
    new = _normal_rows(6, seed=8)
    write(tmp_path / "new.csv", new, ["b"] * 6, ["x,1", "x2", "x3", "x4", "x5", "x6"])
    out = tmp_path / "scores.csv"
    assert main(["score", str(run_dir), "--input", str(tmp_path / "new.csv"), "--out",
                 str(out)]) == 0
    table = list(csv.DictReader(out.open()))
    assert [r["id"] for r in table] == ["x,1", "x2", "x3", "x4", "x5", "x6"]
    model = RunDirectory(run_dir).load_model()
    np.testing.assert_allclose([float(r["score"]) for r in table],
                               score(model, np.round(new, 5)), rtol=1e-5)
    # A table a run of images cannot score, and table options for data that is no table.
    np.savez(tmp_path / "rows.npz", x=rows)
    assert main(["train", "--out", str(tmp_path / "r2"), "--dataset", str(tmp_path / "rows.npz"),
                 "--label-column", "target", "--quiet"]) == 2
    assert "--label-column: expected a table" in capsys.readouterr().err


def test_standardization_travels_with_the_model_and_keeps_the_density_of_raw_data(tmp_path):
    from tfvae.models import VAE, load_model

    rng = np.random.default_rng(0)
    mean, scale = rng.normal(0, 100, 5), rng.uniform(0.5, 50, 5)
    x = (rng.normal(size=(64, 5)) * scale + mean).astype(np.float32)
    settings = dict(image_shape=(5,), likelihood="normal", latent_dim=2, hidden=8, seed=0)
    raw = VAE(**settings, feature_mean=mean.tolist(), feature_scale=scale.tolist())
    plain = VAE(**settings)
    plain.set_weights(raw.get_weights())
    # x = m + s x': log p(x) = log p(x') - sum log s, draw for draw.
    standard = ((x - mean) / scale).astype(np.float32)
    np.testing.assert_allclose(raw.elbo(x, seed=1).numpy(),
                               plain.elbo(standard, seed=1).numpy() - np.log(scale).sum(),
                               rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(raw.reconstruct(x).numpy(),
                               plain.reconstruct(standard).numpy() * scale + mean, rtol=1e-4,
                               atol=1e-3)
    raw.save(tmp_path / "m.keras")
    np.testing.assert_allclose(load_model(tmp_path / "m.keras").elbo(x, seed=1).numpy(),
                               raw.elbo(x, seed=1).numpy(), rtol=1e-6)
    with pytest.raises(InputError, match="^feature_scale: expected values > 0"):
        VAE(**settings, feature_mean=[0.0] * 5, feature_scale=[1, 1, 0, 1, 1])
    with pytest.raises(InputError, match="^feature_mean: expected 5 finite values"):
        VAE(**settings, feature_mean=[0.0] * 4, feature_scale=[1.0] * 5)


def test_train_standardizes_vectors_by_the_training_split(tmp_path):
    from tfvae.training import train

    rows = _normal_rows(600) * 40.0 + 1000.0  # far from where an untrained decoder starts
    np.savez(tmp_path / "rows.npz", x=rows)
    runs = {}
    for standardize in ("auto", "off"):
        runs[standardize] = train(tmp_path / standardize, model_config={
            "latent_dim": 2, "hidden": 32}, data_config={"name": str(tmp_path / "rows.npz")},
            epochs=3, batch_size=50, optimizer="adam", learning_rate=0.01, verbose=0,
            standardize=standardize)
    model = runs["auto"].model
    train_rows = rows[:540].astype(np.float64)
    np.testing.assert_allclose(model.feature_mean, train_rows.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(model.feature_scale, train_rows.std(axis=0), rtol=1e-4)
    assert runs["off"].model.feature_mean is None
    assert runs["auto"].config["train"]["standardize"] == "auto"
    # Standardized, the model fits the data; raw, it is still far from it after as many steps.
    assert runs["auto"].metrics["test_elbo"] > runs["off"].metrics["test_elbo"] + 100


def test_a_mixed_table_trains_with_a_head_per_column_type(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 300
    real = rng.normal(50.0, 10.0, n)
    flag = (real > 50).astype(int)
    visits = rng.poisson(3.0, n)
    colour = np.array(["red", "green", "blue"])[rng.integers(0, 3, n)]
    lines = ["amount,flag,visits,colour"] + [f"{a:.3f},{f},{v},{c}" for a, f, v, c
                                             in zip(real, flag, visits, colour)]
    (tmp_path / "mixed.csv").write_text("\n".join(lines) + "\n")
    run_dir = tmp_path / "run"
    assert main(["train", "--out", str(run_dir), "--dataset", str(tmp_path / "mixed.csv"),
                 "--latent-dim", "2", "--hidden", "16", "--epochs", "2", "--batch-size", "50",
                 "--quiet"]) == 0
    config = RunDirectory(run_dir).read_config()
    assert config["model"]["likelihood"] == "table"
    assert [c["type"] for c in config["model"]["columns"]] == ["real", "binary", "count",
                                                             "categorical"]
    assert config["model"]["columns"][3]["categories"] == ["blue", "green", "red"]
    (tmp_path / "new.csv").write_text("amount,flag,visits,colour\n48.0,0,2,green\n"
                                      "51.0,1,40,red\n")
    assert main(["score", str(run_dir), "--input", str(tmp_path / "new.csv"), "--out",
                 str(tmp_path / "s.csv")]) == 0
    scores = [float(r["score"]) for r in csv.DictReader((tmp_path / "s.csv").open())]
    assert len(scores) == 2 and scores[1] > scores[0]  # 40 visits where about 3 are usual
    # Draws of x are rows of the table: each value of its column's type.
    assert main(["sample", str(run_dir), "--num", "40", "--out", str(tmp_path / "drawn.csv")]) == 0
    drawn = list(csv.DictReader((tmp_path / "drawn.csv").open()))
    assert len(drawn) == 40 and set(drawn[0]) == {"amount", "flag", "visits", "colour"}
    assert {r["colour"] for r in drawn} <= {"red", "green", "blue"}
    assert {r["flag"] for r in drawn} <= {"0", "1"}
    assert all(r["visits"].isdigit() for r in drawn)
    float(drawn[0]["amount"])
    assert main(["reconstruct", str(run_dir), "--out", str(tmp_path / "r.png")]) == 2
    assert "a run of vectors of 4 values" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("amount,flag,visits,colour\n48.0,0,2,purple\n")
    assert main(["score", str(run_dir), "--input", str(tmp_path / "bad.csv"), "--out",
                 str(tmp_path / "s2.csv")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "colour" in err and "purple" in err


def test_graph_checks_follow_the_likelihood_support():
    import tensorflow as tf

    from tfvae.data.graph_checks import check_images, valid_images

    rows = tf.constant([[0.0, 3.0], [0.5, 1.0], [-1.0, 2.0], [7.5, 0.2]])
    assert valid_images(rows, "count").numpy().tolist() == [True, False, False, False]
    assert valid_images(rows, "unit_interval").numpy().tolist() == [False, True, False, False]
    assert valid_images(rows, "real").numpy().tolist() == [True] * 4
    check_images(rows[:1], (2,), "count")
    with pytest.raises(tf.errors.InvalidArgumentError, match="non-negative integers"):
        check_images(rows[1:2], (2,), "count")


def test_a_threshold_goes_with_the_model_it_was_calibrated_for(vector_run, tmp_path):
    import shutil

    _, run_dir = vector_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    run = RunDirectory(copy)
    run.write_threshold(calibrate_threshold(np.arange(10.0), 0.2))
    assert run.read_threshold().threshold == 8.0
    # Training further changes the model: its threshold is removed with the run's stale files.
    assert main(["train", "--out", str(copy), "--resume", "--epochs", "6", "--quiet"]) == 0
    assert run.read_threshold() is None and not run.threshold_path.exists()
    run.threshold_path.write_text('{"threshold": 1.0}')
    with pytest.raises(InputError, match="threshold.json written by tfvae threshold"):
        run.read_threshold()
