"""Data with missing values (allow_missing): the MIWAE bound, imputation against a Gaussian's
known conditional, and tables with empty cells through the commands."""

import csv

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

import tfvae
from tfvae.cli import main
from tfvae.errors import InputError
from tfvae.runs import RunDirectory

NOISE = 0.3


def _linear_gaussian(n, seed=0):
    """Rows x = z W + noise, z ~ N(0, I_2), D = 5: x ~ N(0, W'W + NOISE^2 I), so the conditional
    of any part given the rest is known in closed form."""
    weights = np.random.default_rng(99).normal(size=(2, 5))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)) @ weights + NOISE * rng.normal(size=(n, 5))
    return x.astype(np.float32), weights.T @ weights + NOISE ** 2 * np.eye(5)


def _holes(x, share, seed):
    holed = x.copy()
    holed[np.random.default_rng(seed).random(x.shape) < share] = np.nan
    return holed


def _model(allow_missing=True, seed=0, **settings):
    return tfvae.VAE(image_shape=(5,), likelihood="normal", latent_dim=2, hidden=32,
                     allow_missing=allow_missing, seed=seed, **settings)


def _trained(x, seed=0, epochs=15, **settings):
    keras.utils.set_random_seed(seed)
    model = _model(seed=seed, **settings)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(x, epochs=epochs, batch_size=100, verbose=0)
    return model


@pytest.fixture(scope="module")
def holed_model():
    x, _ = _linear_gaussian(1800)
    return _trained(_holes(x, 0.2, 1), objective="iwae", num_samples=5)


def test_without_missing_values_the_miwae_bound_is_the_iwae_bound():
    x, _ = _linear_gaussian(64, seed=3)
    holed, plain = (_model(allow_missing=a, objective="iwae", num_samples=7) for a in (True, False))
    holed(x[:2]), plain(x[:2])
    plain.set_weights(holed.get_weights())
    np.testing.assert_allclose(holed.bound_terms(x, seed=5)["bound"],
                               plain.bound_terms(x, seed=5)["bound"], rtol=1e-6)


def test_the_bound_scores_the_observed_entries_only():
    x, _ = _linear_gaussian(8, seed=4)
    holed = _holes(x, 0.4, 2)
    model = _model()
    z = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
    p_x = model.decode(z)
    gaussian = p_x.distribution
    by_hand = np.where(np.isnan(holed), 0.0, scipy.stats.norm.logpdf(
        np.nan_to_num(holed), gaussian.loc.numpy(), gaussian.scale.numpy())).sum(axis=1)
    np.testing.assert_allclose(p_x.log_prob(holed).numpy(), by_hand, rtol=1e-5)
    # Gradients stay finite through the entries left out.
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(model.bound_terms(holed, seed=1)["bound"])
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(np.isfinite(g.numpy()).all() for g in gradients if g is not None)


def test_a_table_head_scores_each_column_as_its_log_prob_sums():
    from tfvae.layers.table_likelihood import TableLikelihood

    columns = [{"name": "a", "type": "real"}, {"name": "k", "type": "categorical",
                                               "categories": ["p", "q", "r"]},
               {"name": "n", "type": "count"}, {"name": "b", "type": "binary"}]
    head = TableLikelihood((4,), columns=columns)
    h = tf.constant(np.random.default_rng(1).normal(size=(3, 6)), tf.float32)
    p_x = head(h)
    x = tf.constant([[0.5, 2.0, 3.0, 1.0], [-1.0, 0.0, 0.0, 0.0], [2.0, 1.0, 7.0, 1.0]])
    per_column = p_x.column_log_prob(x).numpy()
    assert per_column.shape == (3, 4)
    np.testing.assert_allclose(per_column.sum(axis=1), p_x.log_prob(x).numpy(), rtol=1e-6)
    rate = p_x.rate.numpy()
    np.testing.assert_allclose(per_column[:, 2], scipy.stats.poisson.logpmf(x[:, 2], rate[:, 0]),
                               rtol=1e-5)


def test_imputation_approaches_the_gaussian_conditional(holed_model):
    x, covariance = _linear_gaussian(300, seed=7)
    holed = _holes(x, 0.2, 8)
    filled = tfvae.impute(holed_model, holed, num_samples=500, seed=1)
    missing = np.isnan(holed)
    np.testing.assert_array_equal(filled[~missing], holed[~missing])  # observed pass through
    np.testing.assert_array_equal(filled, tfvae.impute(holed_model, holed, num_samples=500,
                                                       seed=1))
    conditional = np.zeros_like(filled)  # E[x_m | x_o] = S_mo S_oo^-1 x_o
    for i, row in enumerate(holed):
        seen = ~np.isnan(row)
        if (~seen).any():
            conditional[i, ~seen] = covariance[np.ix_(~seen, seen)] @ np.linalg.solve(
                covariance[np.ix_(seen, seen)], row[seen])
    error = np.sqrt(np.mean((filled[missing] - conditional[missing]) ** 2))
    mean_imputation_error = np.sqrt(np.mean(conditional[missing] ** 2))  # the mean is 0
    assert error < 0.3 * mean_imputation_error
    drawn = tfvae.impute(holed_model, holed[:20], num_samples=200, draws=4, seed=2)
    assert drawn.shape == (4, 20, 5) and not np.isnan(drawn).any()
    np.testing.assert_array_equal(drawn[:, ~missing[:20]], np.broadcast_to(
        holed[:20][~missing[:20]], (4, int((~missing[:20]).sum()))))
    assert np.std(drawn[:, missing[:20]], axis=0).min() > 0  # draws, not one value
    with pytest.raises(InputError, match="allow_missing"):
        tfvae.impute(_model(allow_missing=False), holed)


def test_scores_of_rows_with_holes_are_of_their_observed_part(holed_model):
    x, _ = _linear_gaussian(50, seed=9)
    holed = _holes(x, 0.4, 3)
    scores = tfvae.score(holed_model, holed)
    by_importance = tfvae.score(holed_model, holed, method="importance", num_samples=256)
    assert np.isfinite(scores).all() and np.isfinite(by_importance).all()
    # Fewer observed values, less to explain: a row's score falls as its holes grow.
    fewer = holed.copy()
    fewer[:, :3] = np.nan
    assert tfvae.score(holed_model, fewer).mean() < scores.mean()
    assert (by_importance <= scores + 0.05).mean() > 0.9  # log p(x_o) >= its ELBO


def test_a_model_trained_with_holes_scores_complete_rows_like_one_trained_without():
    x, _ = _linear_gaussian(1800)
    test, _ = _linear_gaussian(400, seed=11)
    miwae = {"objective": "iwae", "num_samples": 20, "epochs": 30}
    complete = [_trained(x, seed=s, **miwae) for s in (0, 1)]
    holed = _trained(_holes(x, 0.2, 1), seed=0, **miwae)
    log_px = [-tfvae.score(m, test, method="importance", num_samples=500)
              for m in (*complete, holed)]
    # The margin: how far two trainings on the complete data land apart, plus the standard
    # error of the rows' mean difference.
    spread = abs(log_px[0].mean() - log_px[1].mean())
    stderr = np.std(log_px[2] - log_px[0]) / np.sqrt(len(test))
    assert abs(log_px[2].mean() - log_px[0].mean()) <= 3 * (spread + stderr), [
        m.mean() for m in log_px]


def test_a_table_with_empty_cells_trains_imputes_and_scores(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 300
    amount = rng.normal(50.0, 10.0, n)
    colour = np.array(["red", "green", "blue"])[(amount > 50).astype(int) + (amount > 58)]
    visits = rng.poisson(3.0, n)
    cells = [[f"{a:.2f}", c, str(v)] for a, c, v in zip(amount, colour, visits)]
    for row in cells[::5]:
        row[rng.integers(0, 3)] = ""
    (tmp_path / "t.csv").write_text("id,amount,colour,visits\n" + "".join(
        f"r{i}," + ",".join(row) + "\n" for i, row in enumerate(cells)))
    args = ["train", "--out", str(tmp_path / "run"), "--dataset", str(tmp_path / "t.csv"),
            "--latent-dim", "2", "--hidden", "16", "--epochs", "3", "--batch-size", "50",
            "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "t.csv' row " in err and "an empty cell" in err and "--allow-missing" in err
    assert not (tmp_path / "run").exists()
    assert main([*args, "--allow-missing"]) == 0
    config = RunDirectory(tmp_path / "run").read_config()
    assert config["data"]["allow_missing"] and config["model"]["allow_missing"]
    out = tmp_path / "filled.csv"
    assert main(["impute", str(tmp_path / "run"), "--input", str(tmp_path / "t.csv"), "--out",
                 str(out), "--num-samples", "64"]) == 0
    filled = list(csv.DictReader(out.open()))
    assert [r["id"] for r in filled] == [f"r{i}" for i in range(n)]
    for given, row in zip(cells, filled):
        assert all(row[name] for name in ("amount", "colour", "visits"))
        for value, name in zip(given, ("amount", "colour", "visits")):
            if value:
                assert row[name] == value or float(row[name]) == float(value)
        assert row["colour"] in ("red", "green", "blue") and row["visits"].isdigit()
    assert main(["impute", str(tmp_path / "run"), "--input", str(tmp_path / "t.csv"), "--out",
                 str(tmp_path / "drawn.csv"), "--draws", "2", "--num-samples", "16"]) == 0
    drawn = list(csv.DictReader((tmp_path / "drawn.csv").open()))
    assert len(drawn) == 2 * n and drawn[n]["draw"] == "1" and drawn[n]["id"] == "r0"
    assert main(["score", str(tmp_path / "run"), "--input", str(tmp_path / "t.csv"), "--out",
                 str(tmp_path / "s.csv")]) == 0
    scores = [float(r["score"]) for r in csv.DictReader((tmp_path / "s.csv").open())]
    assert len(scores) == n and np.isfinite(scores).all()


def test_a_served_export_imputes_rows_with_nan(holed_model, tmp_path):
    from serving_double import ModelServer
    from tfvae.export import export_model
    from tfvae.export.client import Client

    path = export_model(holed_model, tmp_path / "export" / "rows" / "1", num_samples=2000)
    x, _ = _linear_gaussian(6, seed=12)
    holed = _holes(x, 0.3, 5)
    holed[0, 1] = np.nan
    seeds = np.arange(6)
    want = tf.saved_model.load(str(path)).signatures["impute"](
        x=tf.constant(holed), seed=tf.constant(seeds, tf.int64))["x_imputed"].numpy()
    observed = ~np.isnan(holed)
    np.testing.assert_array_equal(want[observed], holed[observed])
    # The export's estimate and tfvae.impute's are two estimates of one conditional mean.
    np.testing.assert_allclose(want, tfvae.impute(holed_model, holed, num_samples=2000),
                               atol=0.15)
    server = ModelServer({"rows": path.parent}).start()
    try:
        for url in (server.rest_url, server.grpc_url):  # NaN through JSON and through gRPC
            got = Client(url, "rows").impute(holed, seeds)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    finally:
        server.stop()


def test_an_npz_mask_marks_the_missing_pixels_of_images(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    mask = (rng.random((40, 8, 8)) > 0.5).astype(np.uint8)
    np.savez(tmp_path / "holes.npz", x=images, mask=mask)
    dataset = tfvae.load_dataset(str(tmp_path / "holes.npz"), allow_missing=True,
                                 binarize="none")
    x = np.concatenate([dataset.x_train, dataset.x_test])[..., 0]
    np.testing.assert_array_equal(np.isnan(x), mask == 0)
    np.testing.assert_allclose(x[mask == 1], images[mask == 1] / 255, rtol=1e-6)
    with pytest.raises(InputError, match="allow_missing=True"):
        tfvae.load_dataset(str(tmp_path / "holes.npz"), binarize="none")
    np.savez(tmp_path / "bad.npz", x=images, mask=mask[:, :4])
    with pytest.raises(InputError, match="mask"):
        tfvae.load_dataset(str(tmp_path / "bad.npz"), allow_missing=True)


def test_binarization_keeps_missing_values_missing():
    from tfvae import noise
    from tfvae.data.pipelines import binarize

    probs = np.random.default_rng(0).random((4, 6)).astype(np.float32)
    probs[1, 2] = probs[3, 0] = np.nan
    for drawn in (noise.bernoulli_keeping_missing(tf.constant(probs), tf.constant([1, 2])).numpy(),
                  binarize(probs, 3)):
        np.testing.assert_array_equal(np.isnan(drawn), np.isnan(probs))
        assert set(np.unique(drawn[~np.isnan(drawn)])) <= {0.0, 1.0}
