"""The discretized logistic mixture of 8-bit pixels ("discretized_logistic"): each level's
probability is the logistic's mass over its bin (scipy's), the edge bins reach the tails, the
256 levels sum to 1, draws lie on the levels, its data checks take the levels only, and a VAE of
it trains, saves and reloads."""

import math

import keras
import numpy as np
import pytest
import scipy.special
import scipy.stats
import tensorflow as tf

import tfvae
from tfvae.data.graph_checks import valid_images
from tfvae.data.validation import check_support, model_images
from tfvae.layers.discretized import (DiscretizedLogisticLikelihood, DiscretizedLogisticMixture,
                                      START_SCALE, bits_per_dim)
from tfvae.layers.likelihoods import MIN_SCALE, likelihood_layer
from tfvae.layers.registries import likelihood_support
from tfvae.models import VAE

LEVELS = np.arange(256) / 255.0


def bin_probabilities(level, loc, scale):
    """P(level) of one logistic by scipy: the CDF's difference over the bin, edges to +-inf."""
    upper = np.where(level == 255, np.inf, (level + 0.5) / 255)
    lower = np.where(level == 0, -np.inf, (level - 0.5) / 255)
    return (scipy.stats.logistic.cdf(upper, loc, scale)
            - scipy.stats.logistic.cdf(lower, loc, scale))


def mixture(rng, batch, k):
    logits = rng.normal(size=(batch, k))
    loc = rng.uniform(-0.2, 1.2, size=(batch, k))
    scale = rng.uniform(0.002, 0.3, size=(batch, k))
    return logits, loc, scale


@pytest.mark.parametrize("k", [1, 3])
def test_the_log_prob_is_the_logistic_mass_of_the_bin(k):
    rng = np.random.default_rng(0)
    logits, loc, scale = mixture(rng, 6, k)
    # Interior levels and both edges, for every mixture.
    level = np.array([0, 1, 77, 128, 254, 255])
    x = np.broadcast_to((level / 255.0)[:, None], (6, 6)).astype(np.float32)
    weights = scipy.special.softmax(logits, axis=-1)
    expected = np.log(sum(weights[:, j] * bin_probabilities(level[:, None], loc[:, j], scale[:, j])
                          for j in range(k)))
    got = DiscretizedLogisticMixture(logits, loc, scale).log_prob(x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_the_256_levels_sum_to_one_and_stay_finite_in_the_tails():
    rng = np.random.default_rng(1)
    logits, loc, scale = mixture(rng, 5, 4)
    # A sharp logistic far outside [0, 1]: its interior bins underflow as differences of CDFs.
    loc[0], scale[0] = 3.0, 1e-3
    d = DiscretizedLogisticMixture(logits, loc, scale)
    log_p = d.log_prob(np.broadcast_to(LEVELS[:, None], (256, 5)).astype(np.float32)).numpy()
    assert np.isfinite(log_p).all()
    np.testing.assert_allclose(np.exp(log_p).sum(axis=0), 1.0, rtol=1e-5)
    # The mean: the binned one within half a level.
    exact = (np.exp(log_p) * LEVELS[:, None]).sum(axis=0)
    np.testing.assert_allclose(d.mean(), exact, atol=0.5 / 255)


def test_a_batch_of_any_rank_gives_what_its_rows_give():
    # Draws of z for a batch of colour images: [S, B, H, W, C] pixels and K components, past the
    # five dimensions TF's CPU softmax kernels take.
    rng = np.random.default_rng(3)
    flat = mixture(rng, 24, 3)
    shape = (2, 1, 3, 2, 2)
    d = DiscretizedLogisticMixture(*(p.reshape(*shape, 3) for p in flat))
    x = (rng.integers(0, 256, 24) / 255.0).astype(np.float32)
    np.testing.assert_allclose(d.mean().numpy().ravel(), DiscretizedLogisticMixture(*flat).mean(),
                               rtol=1e-6)
    np.testing.assert_allclose(d.log_prob(x.reshape(shape)).numpy().ravel(),
                               DiscretizedLogisticMixture(*flat).log_prob(x), rtol=1e-6)


def test_samples_lie_on_the_levels_with_the_levels_probabilities():
    d = DiscretizedLogisticMixture([[0.0, 1.0]], [[0.3, 0.7]], [[0.05, 0.02]])
    x = d.sample(20000, seed=[3, 4]).numpy()[:, 0]
    np.testing.assert_allclose(x * 255, np.round(x * 255), atol=1e-3)
    assert x.min() >= 0 and x.max() <= 1
    np.testing.assert_allclose(x.mean(), d.mean()[0], atol=0.01)


def built_head(shape, k, input_shape=(None, 4)):
    rng = np.random.default_rng(2)
    head = likelihood_layer("discretized_logistic", shape, logistic_components=k)
    head.build(input_shape)
    for weight in head.weights:
        weight.assign(0.5 * rng.normal(size=weight.shape))
    return head, rng


@pytest.mark.parametrize("k", [1, 2])
def test_the_head_maps_hidden_units_to_each_values_mixture(k):
    shape = (2, 3, 1)
    head, rng = built_head(shape, k)
    assert type(head) is DiscretizedLogisticLikelihood and head.components == k
    # Small hidden units: locations within a few scales of every level, where the reference's
    # difference of CDFs does not underflow.
    h = 0.25 * rng.normal(size=(5, 4)).astype(np.float32)
    x = (rng.integers(0, 256, size=(5, *shape)) / 255).astype(np.float32)
    raw = (h.astype(np.float64) @ head.params.kernel.numpy() + head.params.bias.numpy())
    raw = raw.reshape(5, *shape, 2 if k == 1 else 3, k)
    logits = np.zeros_like(raw[..., 0, :]) if k == 1 else raw[..., 0, :]
    loc, raw_scale = raw[..., -2, :] + 0.5, raw[..., -1, :] + np.log(np.expm1(START_SCALE))
    scale = np.logaddexp(0, raw_scale) + MIN_SCALE
    level = np.round(x * 255)[..., None]
    probs = (scipy.special.softmax(logits, axis=-1) * bin_probabilities(level, loc, scale)).sum(-1)
    expected = np.log(probs).reshape(5, -1).sum(axis=1)
    p_x = head(h)
    np.testing.assert_allclose(p_x.log_prob(x), expected, rtol=1e-4)
    assert p_x.mean().shape == (5, *shape)
    drawn = head.draw(p_x, tf.constant([1, 2], tf.int32)).numpy()
    assert drawn.shape == (5, *shape)
    np.testing.assert_allclose(drawn * 255, np.round(drawn * 255), atol=1e-3)
    np.testing.assert_array_equal(drawn, head.draw(p_x, tf.constant([1, 2], tf.int32)))


def test_a_convolutional_bodys_feature_map_gets_a_per_pixel_map():
    head, rng = built_head((4, 4, 3), 10, input_shape=(None, 4, 4, 8))
    assert head.params.kernel.shape == (8, 3 * 3 * 10)
    p_x = head(rng.normal(size=(2, 4, 4, 8)).astype(np.float32))
    assert p_x.event_shape == (4, 4, 3) and p_x.batch_shape == (2,)


def test_its_support_is_the_eight_bit_levels():
    assert likelihood_support("discretized_logistic") == "eight_bit"
    levels = (np.arange(256) / 255).astype(np.float32)
    check_support(levels, "x", "eight_bit")
    for bad in (np.float32(0.5), np.float32(1.5 / 255), np.float32(-1 / 255)):
        with pytest.raises(tfvae.InputError, match="8-bit levels") as error:
            check_support(np.append(levels, bad), "x", "eight_bit")
        assert error.value.argument == "x"
    rows = tf.constant([[0.0, 1.0], [0.5, 0.0], [2 / 255, 1.2]])
    assert valid_images(rows, "eight_bit").numpy().tolist() == [True, False, False]


def test_bits_per_dimension_of_a_bound():
    # A uniform over the 256 levels: log p = -D log 256 nats, 8 bits per dimension.
    assert bits_per_dim(-784 * math.log(256), 784) == pytest.approx(8.0)


def test_a_vae_of_it_trains_saves_and_reloads(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(64, 8, 8, 1)).astype(np.uint8)
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, hidden=16, seed=0,
                likelihood="discretized_logistic", logistic_components=3)
    images = model_images(model, x)  # 0..255 read as k/255
    np.testing.assert_allclose(images * 255, x, atol=1e-4)
    model.compile(optimizer="adam")
    loss = model.fit(images, batch_size=32, epochs=2, verbose=0).history["loss"]
    assert np.isfinite(loss).all()
    # A probability of each level: the bound is at most 0 (8 bits per dimension for a uniform).
    assert -model.elbo(images[:8]).numpy().mean() / (64 * math.log(2)) > 0
    with pytest.raises(tfvae.InputError, match="8-bit levels"):
        model.reconstruct(images[:2] + 0.4 / 255)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.decoder.likelihood.components == 3
    np.testing.assert_array_equal(loaded.reconstruct(images[:4]), model.reconstruct(images[:4]))


def test_the_number_of_components_is_checked():
    with pytest.raises(tfvae.InputError) as error:
        VAE(image_shape=(8, 8, 1), likelihood="discretized_logistic", logistic_components=0)
    assert error.value.argument == "logistic_components"


def test_the_command_trains_it_and_evaluate_prints_bits_per_dimension(tmp_path, capsys):
    from tfvae.cli import main

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "bytes.npz", x_train=rng.integers(0, 256, (200, 8, 8), np.uint8),
             x_test=rng.integers(0, 256, (50, 8, 8), np.uint8))
    run_dir = tmp_path / "run"
    assert main(["train", "--out", str(run_dir), "--dataset", str(tmp_path / "bytes.npz"),
                 "--likelihood", "discretized_logistic", "--logistic-components", "2",
                 "--hidden", "16", "--latent-dim", "2", "--epochs", "1", "--batch-size", "50",
                 "--jit-compile", "off", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    nats = float(out.split("test elbo: ")[1].split()[0])
    bits = float(out.split("test elbo: ")[2].split()[0])
    assert "bits per dimension" in out and bits == pytest.approx(-nats / (64 * math.log(2)),
                                                                rel=1e-3)


def test_the_exported_model_takes_the_levels_only(tmp_path):
    x = (np.random.default_rng(0).integers(0, 256, size=(4, 8, 8, 1)) / 255).astype(np.float32)
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, hidden=8, seed=0,
                likelihood="discretized_logistic")
    exported = tfvae.export.export_model(model, tmp_path / "export" / "1", num_samples=4)
    signatures = tf.saved_model.load(str(exported)).signatures
    out = signatures["reconstruct"](x=tf.constant(x))
    np.testing.assert_allclose(out["x_mean"], model.reconstruct(x), rtol=1e-5, atol=1e-6)
    bound = signatures["log_likelihood"](x=tf.constant(x), seed=tf.range(4, dtype=tf.int64))
    assert np.isfinite(bound["log_px"]).all() and (bound["log_px"].numpy() <= 0).all()
    with pytest.raises(tf.errors.InvalidArgumentError, match="8-bit levels"):
        signatures["reconstruct"](x=tf.constant(x + 0.4 / 255))
