"""The "table" head: one distribution per column of a heterogeneous table (real, binary, count,
categorical), checked against scipy from the head's own parameters, its draws, a VAE that trains,
saves and reloads with it, and its exports (SavedModel, and LiteRT and ONNX where installed)."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

import tfvae
from tfvae import VAE
from tfvae.errors import InputError
from tfvae.export import export_model, input_specs
from tfvae.export.signatures import serving_functions
from tfvae.layers.likelihoods import MIN_SCALE, likelihood_layer
from tfvae.layers.registries import LIKELIHOODS, likelihood_support
from tfvae.layers.table_likelihood import TableLikelihood, log_factorial1p
from test_runtimes import runner

COLUMNS = [{"name": "age", "type": "real", "categories": None},
           {"name": "smoker", "type": "binary", "categories": None},
           {"name": "visits", "type": "count", "categories": None},
           {"name": "colour", "type": "categorical", "categories": ["blue", "green", "red"]}]
HIDDEN = 3
FEATURE_MEAN = [40.0, 0.3, 2.0, 1.0]  # only the real column's are used
FEATURE_SCALE = [12.0, 0.5, 1.5, 0.8]
ROWS = np.array([[35.5, 1, 0, 2],
                 [71.0, 0, 3, 0],
                 [12.25, 1, 37, 1],
                 [40.0, 0, 1, 2]], np.float32)


def softplus(v):
    return np.logaddexp(0.0, v)


def table_head(scale="network", columns=COLUMNS, feature_stats=True, seed=0):
    """The head on HIDDEN units, its dense map set to known weights; returns (head, W, b)."""
    head = likelihood_layer("table", (len(columns),), gaussian_scale=scale,
                            feature_mean=FEATURE_MEAN[:len(columns)] if feature_stats else None,
                            feature_scale=FEATURE_SCALE[:len(columns)] if feature_stats else None,
                            columns=columns)
    head.build((None, HIDDEN))
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(HIDDEN, head.num_parameters)).astype(np.float32)
    bias = rng.normal(size=head.num_parameters).astype(np.float32)
    head.params.kernel.assign(kernel)
    head.params.bias.assign(bias)
    return head, kernel, bias


def hidden(rows, seed=1):
    return np.random.default_rng(seed).normal(size=(rows, HIDDEN)).astype(np.float32)


def expected_parameters(raw, scale):
    """The four columns' parameters from the dense map's outputs ``raw`` [N, P], by the
    documented layout: real (mean, raw scale with "network"), binary logit, count raw rate,
    categorical K logits."""
    width = 2 if scale == "network" else 1
    mean = raw[:, 0]
    if scale == "network":
        sd = softplus(raw[:, 1]) + MIN_SCALE
    elif scale == "learned":  # one free value per real column, initially 0
        sd = np.full(len(raw), softplus(0.0) + MIN_SCALE)
    else:
        sd = np.full(len(raw), scale)
    return {"loc": FEATURE_MEAN[0] + FEATURE_SCALE[0] * mean, "scale": FEATURE_SCALE[0] * sd,
            "probs": special.expit(raw[:, width]), "rate": softplus(raw[:, width + 1]) + MIN_SCALE,
            "logits": raw[:, width + 2:width + 5]}


def scipy_log_prob(x, p):
    categorical = special.log_softmax(p["logits"], axis=-1)[np.arange(len(x)),
                                                            x[:, 3].astype(int)]
    return (stats.norm.logpdf(x[:, 0], p["loc"], p["scale"])
            + stats.bernoulli.logpmf(x[:, 1], p["probs"])
            + stats.poisson.logpmf(x[:, 2], p["rate"]) + categorical)


# -- the head -----------------------------------------------------------------------------------

def test_it_is_registered_and_takes_any_finite_value():
    assert LIKELIHOODS.get("table") is TableLikelihood
    assert likelihood_support("table") == "real" and not TableLikelihood.unit_interval


@pytest.mark.parametrize("scale", ["network", "learned", 0.7])
def test_log_prob_is_the_sum_of_the_columns_scipy_log_probabilities(scale):
    head, kernel, bias = table_head(scale)
    width = 2 if scale == "network" else 1
    # The layout of the dense map's outputs, column by column.
    assert head.parameter_slices == [slice(0, width), slice(width, width + 1),
                                     slice(width + 1, width + 2), slice(width + 2, width + 5)]
    h = hidden(len(ROWS))
    p_x = head(tf.constant(h))
    assert p_x.batch_shape == (len(ROWS),) and p_x.event_shape == (4,)
    want = scipy_log_prob(ROWS, expected_parameters(h @ kernel + bias, scale))
    np.testing.assert_allclose(p_x.log_prob(ROWS).numpy(), want, rtol=1e-5, atol=1e-5)


def test_log_prob_broadcasts_x_against_leading_sample_dimensions():
    head, kernel, bias = table_head()
    h = hidden(2 * len(ROWS))  # [S=2, B=4] flattened, as the decoder passes it
    p_x = head(tf.constant(h), batch_shape=tf.constant([2, len(ROWS)]))
    assert p_x.batch_shape == (2, len(ROWS)) and p_x.mean().shape == (2, len(ROWS), 4)
    raw = (h @ kernel + bias).reshape(2, len(ROWS), -1)
    want = np.stack([scipy_log_prob(ROWS, expected_parameters(raw[s], "network"))
                     for s in range(2)])
    np.testing.assert_allclose(p_x.log_prob(ROWS).numpy(), want, rtol=1e-5, atol=1e-5)


def test_categorical_columns_of_different_sizes_are_exact_despite_the_padding():
    columns = [{"name": "a", "type": "categorical", "categories": [0, 1]},
               {"name": "b", "type": "real", "categories": None},
               {"name": "c", "type": "categorical", "categories": list("vwxyz")}]
    head, kernel, bias = table_head(0.5, columns, feature_stats=False)
    assert head.parameter_slices == [slice(0, 2), slice(2, 3), slice(3, 8)]
    h = hidden(6)
    raw = h @ kernel + bias
    x = np.array([[0, 0.3, 4], [1, -2.0, 0], [1, 5.0, 2], [0, 0.0, 3], [1, 1.0, 1],
                  [0, -0.5, 4]], np.float32)
    rows = np.arange(len(x))
    want = (special.log_softmax(raw[:, :2], -1)[rows, x[:, 0].astype(int)]
            + stats.norm.logpdf(x[:, 1], raw[:, 2], 0.5)
            + special.log_softmax(raw[:, 3:], -1)[rows, x[:, 2].astype(int)])
    p_x = head(tf.constant(h))
    np.testing.assert_allclose(p_x.log_prob(x).numpy(), want, rtol=1e-5, atol=1e-5)
    mean = p_x.mean().numpy()
    np.testing.assert_array_equal(mean[:, 0], raw[:, :2].argmax(-1))
    np.testing.assert_array_equal(mean[:, 2], raw[:, 3:].argmax(-1))
    draws = head.draw(p_x, tf.constant([3, 4])).numpy()
    assert set(np.unique(draws[:, 0])) <= {0, 1} and set(np.unique(draws[:, 2])) <= set(range(5))


def test_the_mean_is_each_columns_mean_and_the_most_probable_category():
    head, kernel, bias = table_head()
    h = hidden(6)
    p = expected_parameters(h @ kernel + bias, "network")
    mean = head(tf.constant(h)).mean().numpy()
    np.testing.assert_allclose(mean[:, 0], p["loc"], rtol=1e-5)
    np.testing.assert_allclose(mean[:, 1], p["probs"], rtol=1e-5)
    np.testing.assert_allclose(mean[:, 2], p["rate"], rtol=1e-5)
    np.testing.assert_array_equal(mean[:, 3], p["logits"].argmax(-1))


def test_values_outside_a_columns_support_have_probability_zero():
    head, _, _ = table_head()
    p_x = head(tf.constant(hidden(5)))
    x = np.repeat(ROWS[:1], 5, axis=0)
    x[0, 3], x[1, 3], x[2, 3], x[3, 2] = 3, -1, 1.5, -2  # codes 0..2 only; counts >= 0
    log_prob = p_x.log_prob(x).numpy()
    assert np.isneginf(log_prob[:4]).all() and np.isfinite(log_prob[4])


def test_log_factorial_is_lgamma_of_x_plus_one():
    x = np.concatenate([np.arange(200), [1e3, 5e4, 1e6, 2.5]]).astype(np.float32)
    np.testing.assert_allclose(log_factorial1p(tf.constant(x)).numpy(), special.gammaln(x + 1.0),
                               rtol=2e-6, atol=5e-6)


def test_draws_are_reproducible_in_range_and_follow_the_parameters():
    head, kernel, bias = table_head()
    n = 20000
    h = np.repeat(hidden(1), n, axis=0)  # one row's distribution, n times
    p_x = head(tf.constant(h))
    x = head.draw(p_x, tf.constant([5, 6])).numpy()
    assert x.shape == (n, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(x, head.draw(p_x, tf.constant([5, 6])))
    assert not np.array_equal(x, head.draw(p_x, tf.constant([5, 7])))
    p = expected_parameters(h[:1] @ kernel + bias, "network")
    assert set(np.unique(x[:, 1])) <= {0.0, 1.0}
    assert (x[:, 2] >= 0).all() and (x[:, 2] == np.round(x[:, 2])).all()
    assert set(np.unique(x[:, 3])) <= {0.0, 1.0, 2.0}
    frequencies = np.bincount(x[:, 3].astype(int), minlength=3) / n
    np.testing.assert_allclose(frequencies, special.softmax(p["logits"][0]), atol=0.02)
    assert abs(x[:, 1].mean() - p["probs"][0]) < 0.02
    assert abs(x[:, 2].mean() - p["rate"][0]) < 0.05 * max(p["rate"][0], 1.0)
    assert abs(x[:, 0].mean() - p["loc"][0]) < 0.05 * p["scale"][0]
    assert abs(x[:, 0].std() / p["scale"][0] - 1) < 0.05
    # TFP's sample (the distribution's own) keeps the same ranges.
    s = p_x[:50].sample(3, seed=(1, 2)).numpy()
    assert s.shape == (3, 50, 4) and set(np.unique(s[..., 3])) <= {0.0, 1.0, 2.0}


def test_a_draw_compiles_with_xla():
    """A wake-sleep step draws x ~ p(x|z) inside a jit_compile'd step."""
    head, _, _ = table_head()
    draw = tf.function(lambda h, seed: head.draw(head(h), seed), jit_compile=True)
    x = draw(tf.constant(hidden(8)), tf.constant([1, 2], tf.int32)).numpy()
    assert x.shape == (8, 4) and set(np.unique(x[:, 3])) <= {0.0, 1.0, 2.0}


@pytest.mark.parametrize("columns, got", [
    (None, "none"),
    (COLUMNS[:3], "3 columns"),
    ([*COLUMNS[:3], {"name": "x", "type": "ordinal"}], "'ordinal'"),
    ([*COLUMNS[:3], {"name": "x", "type": "categorical"}], "None"),
    ([*COLUMNS[:3], {"name": "x", "type": "count", "categories": [1, 2]}], "[1, 2]"),
])
def test_bad_columns_are_refused(columns, got):
    with pytest.raises(InputError, match=r"^columns: expected .*got .*" + re.escape(got)):
        likelihood_layer("table", (4,), columns=columns)
    with pytest.raises(InputError, match="^columns: "):
        VAE(image_shape=(4,), likelihood="table", columns=columns, latent_dim=2, hidden=8)


def test_its_config_keeps_the_columns():
    head, _, _ = table_head("learned")
    config = head.get_config()
    assert config["columns"] == COLUMNS and config["scale"] == "learned"
    again = TableLikelihood.from_config(config)
    assert again.columns == COLUMNS and again.parameter_slices == head.parameter_slices
    assert again.feature_mean == FEATURE_MEAN


# -- in a model ---------------------------------------------------------------------------------

def table_data(n, seed):
    rng = np.random.default_rng(seed)
    return np.stack([rng.normal(40, 12, n), rng.integers(0, 2, n), rng.poisson(4.0, n),
                     rng.integers(0, 3, n)], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    x = table_data(8, 0)
    model = VAE(image_shape=(4,), likelihood="table", columns=COLUMNS, latent_dim=2, hidden=16,
                seed=0, feature_mean=FEATURE_MEAN, feature_scale=FEATURE_SCALE)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(x, batch_size=4, epochs=1, verbose=0).history
    return {"model": model, "x": x, "history": history,
            "tmp": tmp_path_factory.mktemp("table")}


def test_a_vae_trains_saves_and_reloads(trained):
    model, x = trained["model"], trained["x"]
    assert model.optimizer.iterations.numpy() == 2
    assert all(np.isfinite(values).all() for values in trained["history"].values())
    elbo = model.elbo(x, seed=0).numpy()
    assert elbo.shape == (len(x),) and np.isfinite(elbo).all()
    path = trained["tmp"] / "m.keras"
    model.save(path)
    loaded = tfvae.models.load_model(path)
    assert isinstance(loaded.decoder.likelihood, TableLikelihood)
    assert loaded.get_config()["columns"] == COLUMNS
    np.testing.assert_allclose(loaded.elbo(x, seed=0).numpy(), elbo, rtol=1e-6)
    reconstruction = loaded.reconstruct(x[:3]).numpy()
    assert reconstruction.shape == (3, 4)
    assert ((reconstruction[:, 1] > 0) & (reconstruction[:, 1] < 1)).all()
    assert (reconstruction[:, 2] > 0).all()
    assert set(np.unique(reconstruction[:, 3])) <= {0.0, 1.0, 2.0}


@pytest.fixture(scope="module")
def exported(trained):
    model = trained["model"]
    path = export_model(model, trained["tmp"] / "export" / "table" / "1", num_samples=4)
    loaded = tf.saved_model.load(str(path))
    rng = np.random.default_rng(3)
    inputs = {"x": table_data(3, 2), "seed": np.array([0, 7, 2**40 + 3], np.int64),
              "z": rng.standard_normal((3, model.latent_dim)).astype(np.float32)}
    want = {}
    for name, specs in input_specs(model).items():
        feed = {s.name: tf.constant(inputs[s.name]) for s in specs}
        want[name] = {k: v.numpy() for k, v in loaded.signatures[name](**feed).items()}
    return {"model": model, "inputs": inputs, "want": want}


def test_the_savedmodel_answers_as_the_model(exported):
    model, inputs, want = exported["model"], exported["inputs"], exported["want"]
    functions = serving_functions(model, 4)
    got = functions["log_likelihood"](tf.constant(inputs["x"]), tf.constant(inputs["seed"]))
    for key in ("elbo", "log_px"):
        assert np.isfinite(want["log_likelihood"][key]).all()
        np.testing.assert_allclose(want["log_likelihood"][key], got[key].numpy(), rtol=1e-5,
                                   atol=1e-5, err_msg=key)
    np.testing.assert_allclose(want["reconstruct"]["x_mean"], model.reconstruct(inputs["x"]),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(want["decode"]["x_mean"], model.decode(inputs["z"]).mean(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_litert_and_onnx_files_answer_as_the_savedmodel(fmt, exported, tmp_path):
    pytest.importorskip({"tflite": "ai_edge_litert", "onnx": "tf2onnx"}[fmt])
    model, inputs, want = exported["model"], exported["inputs"], exported["want"]
    out = tmp_path / ("m.tflite" if fmt == "tflite" else "onnx")
    export_model(model, out, format=fmt, num_samples=4)
    run = runner(fmt, out)
    for name, specs in input_specs(model).items():
        got = run(name, {s.name: inputs[s.name] for s in specs})
        assert sorted(got) == sorted(want[name]), name
        for key, value in want[name].items():
            np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-4,
                                       err_msg=f"{fmt} {name}/{key}")
