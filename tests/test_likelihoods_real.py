"""The decoder heads of data that are not pixels in [0, 1]: "normal" (real values, an unbounded
mean), "poisson" and "negative_binomial" (counts). Their log-probabilities are scipy's, their
draws are seeded and have the distribution's mean, each class says what x it takes (``support``),
and a VAE of each trains, saves and reloads, on images and on vectors."""

import keras
import numpy as np
import pytest
import scipy.special
import scipy.stats
import tensorflow as tf

import tfvae
from tfvae.layers.likelihoods import (MIN_SCALE, BernoulliLikelihood, GaussianLikelihood,
                                      Likelihood, NegativeBinomialLikelihood, NormalLikelihood,
                                      PoissonLikelihood, likelihood_layer)
from tfvae.layers.registries import LIKELIHOODS, SUPPORTS, likelihood_support, unit_interval
from tfvae.models import VAE

SHAPES = [(2, 3, 1), (6,)]
HIDDEN = 4


def softplus(v):
    return np.logaddexp(0.0, v.astype(np.float64))


def built(head, rng, input_shape=(None, HIDDEN), scale_weights=0.5):
    """``head`` built on [N, HIDDEN] inputs, its dense weights drawn from ``rng``."""
    head.build(input_shape)
    for weight in head.weights:
        weight.assign(scale_weights * rng.normal(size=weight.shape))
    return head


def affine(head, layer, h, shape):
    """What the head's dense ``layer`` gives for ``h``, in float64, as [N, *shape]."""
    out = h.astype(np.float64) @ layer.kernel.numpy() + layer.bias.numpy()
    return out.reshape(len(h), *shape)


def summed(values):
    return values.reshape(len(values), -1).sum(axis=1)


# -- log-probabilities against scipy -----------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", ["network", "learned", 0.7])
def test_the_normal_log_prob_is_scipys(shape, scale):
    rng = np.random.default_rng(0)
    head = built(NormalLikelihood(shape, scale=scale), rng)
    h = rng.normal(size=(5, HIDDEN)).astype(np.float32)
    x = (3.0 * rng.normal(size=(5, *shape))).astype(np.float32)
    loc = affine(head, head.mean, h, shape)  # no sigmoid
    if scale == "network":
        sd = softplus(affine(head, head.raw_scale, h, shape)) + MIN_SCALE
    elif scale == "learned":
        sd = softplus(head.pixel_raw_scale.numpy()) + MIN_SCALE
    else:
        sd = scale
    expected = summed(scipy.stats.norm.logpdf(x, loc, sd))
    np.testing.assert_allclose(head(h).log_prob(x), expected, rtol=1e-5)
    np.testing.assert_allclose(head(h).mean(), loc, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_poisson_log_prob_is_scipys(shape):
    rng = np.random.default_rng(1)
    head = built(PoissonLikelihood(shape), rng)
    h = rng.normal(size=(5, HIDDEN)).astype(np.float32)
    rate = softplus(affine(head, head.raw_rate, h, shape)) + MIN_SCALE
    x = rng.poisson(3.0 * rate).astype(np.float32)
    expected = summed(scipy.stats.poisson.logpmf(x, rate))
    np.testing.assert_allclose(head(h).log_prob(x), expected, rtol=1e-5)
    np.testing.assert_allclose(head(h).mean(), rate, rtol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_negative_binomial_log_prob_is_scipys(shape):
    # TFP's NegativeBinomial(r, logits l): pmf(x) = C(x + r - 1, x) p^x (1 - p)^r, p = sigmoid(l),
    # x successes before r failures. scipy's nbinom(n, q): C(k + n - 1, k) q^n (1 - q)^k, k
    # failures before n successes. The same with n = r, k = x and q = 1 - p = sigmoid(-l).
    rng = np.random.default_rng(2)
    head = built(NegativeBinomialLikelihood(shape), rng)
    h = rng.normal(size=(5, HIDDEN)).astype(np.float32)
    r = softplus(affine(head, head.raw_total_count, h, shape)) + MIN_SCALE
    logits = affine(head, head.logits, h, shape)
    x = rng.poisson(5.0, size=(5, *shape)).astype(np.float32)
    expected = summed(scipy.stats.nbinom.logpmf(x, r, scipy.special.expit(-logits)))
    np.testing.assert_allclose(head(h).log_prob(x), expected, rtol=1e-5)
    mean = scipy.stats.nbinom.mean(r, scipy.special.expit(-logits))
    np.testing.assert_allclose(head(h).mean(), mean, rtol=1e-5)


def test_a_count_head_on_a_feature_map_maps_each_pixel():
    """A convolutional body's [N, H, W, F] output gets a per-pixel map to the channels."""
    rng = np.random.default_rng(3)
    head = built(PoissonLikelihood((2, 3, 2)), rng, input_shape=(None, 2, 3, 5))
    h = rng.normal(size=(4, 2, 3, 5)).astype(np.float32)
    rate = softplus(affine(head, head.raw_rate, h.reshape(-1, 5), (2,)).reshape(4, 2, 3, 2))
    x = rng.poisson(2.0, size=(4, 2, 3, 2)).astype(np.float32)
    expected = summed(scipy.stats.poisson.logpmf(x, rate + MIN_SCALE))
    np.testing.assert_allclose(head(h).log_prob(x), expected, rtol=1e-5)


def test_the_normal_mean_is_unbounded_where_the_gaussians_is_squashed():
    h = np.ones((3, HIDDEN), np.float32)
    means = {}
    for cls in (NormalLikelihood, GaussianLikelihood):
        head = cls((6,), scale=0.5)
        head.build((None, HIDDEN))
        head.mean.kernel.assign(np.zeros((HIDDEN, 6)))
        head.mean.bias.assign(np.full(6, 8.7))
        means[cls] = head(h).mean().numpy()
    np.testing.assert_allclose(means[NormalLikelihood], 8.7, rtol=1e-6)
    np.testing.assert_allclose(means[GaussianLikelihood], scipy.special.expit(8.7), rtol=1e-6)
    assert (means[GaussianLikelihood] < 1).all()


def test_the_counts_stay_finite_at_extreme_outputs():
    """softplus + a floor: rates neither overflow nor reach 0 where the dense output is huge."""
    for cls, positive in ((PoissonLikelihood, "raw_rate"),
                          (NegativeBinomialLikelihood, "raw_total_count")):
        head = cls((3,))
        head.build((None, 1))
        for weight in head.weights:
            weight.assign(np.zeros(weight.shape))
        for bias in (-1e4, 1e3):
            getattr(head, positive).bias.assign(np.full(3, bias))
            p_x = head(np.ones((2, 1), np.float32))
            logp = p_x.log_prob(np.array([[0.0, 1.0, 40.0]] * 2, np.float32))
            assert np.isfinite(logp).all(), (cls.__name__, bias, logp)


# -- draws ----------------------------------------------------------------------------------------

HEADS = {"normal": lambda shape: NormalLikelihood(shape, scale="network"),
         "poisson": PoissonLikelihood, "negative_binomial": NegativeBinomialLikelihood}


@pytest.mark.parametrize("name", list(HEADS))
def test_a_draw_is_seeded_and_has_the_mean(name):
    rng = np.random.default_rng(4)
    head = built(HEADS[name]((3,)), rng)
    # One hidden vector, repeated: every row draws from the same p(x|z).
    p_x = head(np.repeat(rng.normal(size=(1, HIDDEN)).astype(np.float32), 20000, axis=0))
    seed = tf.constant([7, 11], tf.int32)
    x = head.draw(p_x, seed)
    assert x.dtype == tf.float32 and x.shape == (20000, 3)
    np.testing.assert_array_equal(x, head.draw(p_x, seed))
    assert not np.array_equal(x, head.draw(p_x, tf.constant([7, 12], tf.int32)))
    mean = p_x.mean().numpy()[0]
    stddev = np.sqrt(p_x.distribution.variance().numpy()[0])
    # Within 5 standard errors of the mean.
    np.testing.assert_array_less(np.abs(x.numpy().mean(axis=0) - mean), 5 * stddev / np.sqrt(20000))
    np.testing.assert_allclose(x.numpy().std(axis=0), stddev, rtol=0.1)
    if name != "normal":
        assert (x.numpy() >= 0).all() and (x.numpy() == np.round(x.numpy())).all()


@pytest.mark.parametrize("name", ["poisson", "negative_binomial"])
def test_a_count_draw_compiles_with_xla(name):
    """tf.random.stateless_poisson and stateless_gamma have no XLA kernels; the heads' draws do
    (a wake-sleep step draws x ~ p(x|z) inside a jit_compile'd step)."""
    rng = np.random.default_rng(5)
    head = built(HEADS[name]((2, 2, 1)), rng)
    h = rng.normal(size=(3, HIDDEN)).astype(np.float32)
    draw = tf.function(lambda h, seed: head.draw(head(h), seed), jit_compile=True)
    seed = tf.constant([1, 2], tf.int32)
    x = draw(h, seed).numpy()
    np.testing.assert_array_equal(x, draw(h, seed))
    assert x.shape == (3, 2, 2, 1) and (x >= 0).all()


# -- what x each head takes ----------------------------------------------------------------------

def test_each_head_declares_its_support():
    expected = {"bernoulli": "unit_interval", "gaussian": "real", "normal": "real",
                "poisson": "count", "negative_binomial": "count"}
    for name, support in expected.items():
        assert likelihood_support(name) == support == LIKELIHOODS.get(name).support
        assert unit_interval(name) == (support == "unit_interval")
    assert likelihood_support("nope") is None and not unit_interval("nope")
    assert all(LIKELIHOODS.get(name).support in SUPPORTS for name in LIKELIHOODS)


def test_a_subclass_setting_one_of_unit_interval_and_support_gets_the_other():
    class Unit(Likelihood):
        unit_interval = True

    class Counts(Likelihood):
        support = "count"

    class Binary(BernoulliLikelihood):
        pass

    assert (Unit.support, Unit.unit_interval) == ("unit_interval", True)
    assert (Counts.support, Counts.unit_interval) == ("count", False)
    assert (Binary.support, Binary.unit_interval) == ("unit_interval", True)
    assert (Likelihood.support, Likelihood.unit_interval) == ("real", False)
    with pytest.raises(ValueError, match="support"):
        class Typo(Likelihood):  # noqa: F841
            support = "counts"


def test_the_normal_head_reads_the_gaussian_scale_setting():
    head = likelihood_layer("normal", (6,), gaussian_scale="learned")
    assert type(head) is NormalLikelihood and head.scale == "learned"
    with pytest.raises(tfvae.InputError):
        likelihood_layer("normal", (6,), gaussian_scale=-1.0)
    config = head.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(head))
    assert type(restored) is NormalLikelihood and restored.get_config() == config


# -- models ----------------------------------------------------------------------------------------

def data_for(likelihood, shape, rng, n=8):
    if likelihood == "normal":  # real values well outside [0, 1]
        return (3.0 + 5.0 * rng.normal(size=(n, *shape))).astype(np.float32)
    # Counts as float32: integer arrays are read as grey levels 0..255 and scaled by 1/255.
    return rng.poisson(4.0, size=(n, *shape)).astype(np.float32)


@pytest.mark.parametrize("shape", [(28, 28, 1), (12,)], ids=["image", "vector"])
@pytest.mark.parametrize("likelihood", ["normal", "poisson", "negative_binomial"])
def test_a_vae_trains_saves_and_reloads(likelihood, shape, tmp_path):
    x = data_for(likelihood, shape, np.random.default_rng(6))
    assert x.max() > 1
    model = VAE(image_shape=shape, likelihood=likelihood, latent_dim=2, hidden=16, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(x, batch_size=4, epochs=1, verbose=0).history
    assert model.optimizer.iterations.numpy() == 2
    assert np.isfinite(history["loss"]).all()
    elbo = model.elbo(x, seed=0).numpy()
    assert elbo.shape == (len(x),) and np.isfinite(elbo).all()

    model.save(tmp_path / "m.keras")
    loaded = tfvae.models.load_model(tmp_path / "m.keras")
    assert type(loaded.decoder.likelihood) is type(model.decoder.likelihood)
    np.testing.assert_allclose(loaded.elbo(x, seed=0), elbo, rtol=1e-6)
    reconstruction = loaded.reconstruct(x[:3]).numpy()
    assert reconstruction.shape == (3, *shape)
    if likelihood != "normal":
        assert (reconstruction > 0).all()  # a mean count


@pytest.mark.parametrize("likelihood", ["poisson", "negative_binomial"])
def test_wake_sleep_draws_counts_in_an_xla_step(likelihood):
    """The sleep phase draws x ~ p(x|z) in the training step, which XLA compiles."""
    x = data_for(likelihood, (12,), np.random.default_rng(7))
    model = tfvae.models.WakeSleep(image_shape=(12,), likelihood=likelihood, latent_dim=2,
                                   hidden=16, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    history = model.fit(x, batch_size=4, epochs=1, verbose=0).history
    assert model.optimizer.iterations.numpy() == 2
    assert all(np.isfinite(values).all() for values in history.values())
