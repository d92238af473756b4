"""Distribution heads: shapes, log-probabilities against hand-computed values, bounded scales."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import stats

from tfvae.layers.likelihoods import (MIN_SCALE, BernoulliLikelihood, CrossEntropyBernoulli,
                                        DiagonalGaussian, GaussianLikelihood)
from tfvae.errors import InputError
from tfvae.layers.diagonal_normal import DiagonalNormal


def _set_dense(layer, kernel, bias):
    layer.set_weights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32)])


def test_diagonal_gaussian_shapes_and_log_prob():
    head = DiagonalGaussian(latent_dim=2)
    head.build((None, 3))
    kernel = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    _set_dense(head.params, kernel, [0.1, -0.2, 0.3, -0.4])
    h = np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.7]], np.float32)
    q = head(h)
    assert q.batch_shape == (2,) and q.event_shape == (2,)
    out = h @ kernel + [0.1, -0.2, 0.3, -0.4]
    loc, scale = out[:, :2], np.log1p(np.exp(out[:, 2:])) + MIN_SCALE
    z = np.array([[0.2, -0.1], [1.0, 0.5]], np.float32)
    expected = stats.norm(loc, scale).logpdf(z).sum(-1)
    np.testing.assert_allclose(q.log_prob(z), expected, rtol=1e-5)
    np.testing.assert_allclose(q.stddev(), scale, rtol=1e-5)


def test_diagonal_gaussian_scale_neither_collapses_nor_overflows():
    head = DiagonalGaussian(latent_dim=1)
    head.build((None, 1))
    _set_dense(head.params, [[0.0, 1.0]], [0.0, 0.0])
    q = head(np.array([[-1e6], [1e6]], np.float32))
    stddev = q.stddev().numpy()[:, 0]
    assert stddev[0] == pytest.approx(MIN_SCALE)
    assert np.isfinite(stddev[1]) and stddev[1] == pytest.approx(1e6)
    assert np.all(np.isfinite(q.log_prob([[0.0], [0.0]])))


def test_bernoulli_log_prob_matches_cross_entropy_on_binary_and_grey_pixels():
    head = BernoulliLikelihood((2, 2, 1))
    head.build((None, 3))
    kernel = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    _set_dense(head.logits, kernel, np.zeros(4))
    h = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    p = head(h)
    assert p.batch_shape == (5,) and p.event_shape == (2, 2, 1)
    logits = h @ kernel
    for x in (np.array([1, 0, 0, 1], np.float32), np.array([0.25, 0.5, 0.0, 0.9], np.float32)):
        expected = (x * np.log(1 / (1 + np.exp(-logits)))
                    + (1 - x) * np.log(1 / (1 + np.exp(logits)))).sum(-1)
        np.testing.assert_allclose(p.log_prob(x.reshape(2, 2, 1)), expected, rtol=1e-5)
    np.testing.assert_allclose(p.mean().numpy().reshape(5, 4), 1 / (1 + np.exp(-logits)),
                               rtol=1e-5)


def test_bernoulli_log_prob_and_gradient_stay_accurate_at_large_logits():
    # x * l - softplus(l) loses the log1p(exp(-l)) part once l passes float32's resolution;
    # what is lost must stay below a ulp of l, per pixel, in value and in gradient.
    logits = tf.Variable(np.linspace(-60, 60, 241).astype(np.float32))
    l64 = logits.numpy().astype(np.float64)
    for x in (np.ones(241, np.float32), np.zeros(241, np.float32),
              np.full(241, 0.3, np.float32)):
        with tf.GradientTape() as tape:
            log_prob = CrossEntropyBernoulli(logits=logits, dtype=tf.float32).log_prob(x)
        np.testing.assert_allclose(log_prob, x * l64 - np.logaddexp(0.0, l64), atol=4e-6,
                                   rtol=1e-6)
        np.testing.assert_allclose(tape.gradient(log_prob, logits), x - 1 / (1 + np.exp(-l64)),
                                   atol=1e-6)


def test_bernoulli_head_keeps_leading_sample_dims():
    head = BernoulliLikelihood((4, 4, 1))
    head.build((None, 3))
    p = head(tf.zeros([6, 3]), batch_shape=tf.constant([2, 3]))
    assert p.batch_shape == (2, 3)


@pytest.mark.parametrize("scale", ["network", "learned", 0.2])
def test_gaussian_log_prob_against_scipy(scale):
    head = GaussianLikelihood((1, 3, 1), scale=scale)
    head.build((None, 2))
    rng = np.random.default_rng(2)
    kernel, h = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(4, 2)).astype(np.float32)
    _set_dense(head.mean, kernel, np.zeros(3))
    if scale == "network":
        _set_dense(head.raw_scale, -kernel, np.ones(3))
        sigma = np.log1p(np.exp(h @ -kernel + 1)) + MIN_SCALE
    elif scale == "learned":
        sigma = np.full(3, np.log(2.0) + MIN_SCALE)  # softplus(0)
    else:
        sigma = 0.2
    mean = 1 / (1 + np.exp(-(h @ kernel)))
    x = rng.uniform(size=(4, 3)).astype(np.float32)
    p = head(h)
    expected = stats.norm(mean, sigma).logpdf(x).sum(-1)
    np.testing.assert_allclose(p.log_prob(x.reshape(4, 1, 3, 1)), expected, rtol=1e-4)


def test_gaussian_rejects_a_bad_scale():
    with pytest.raises(InputError, match="gaussian scale"):
        GaussianLikelihood((2, 2, 1), scale=-1.0)


@pytest.mark.parametrize("layer", [DiagonalGaussian(3), BernoulliLikelihood((2, 2, 1)),
                                   GaussianLikelihood((2, 2, 1), scale="learned")])
def test_heads_round_trip_through_config(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert keras.saving.get_registered_object(f"tfvae>{type(layer).__name__}") is type(layer)


def test_diagonal_normal_density_and_kl_are_the_closed_forms():
    rng = np.random.default_rng(0)
    loc = rng.normal(size=(3, 4)).astype(np.float32)
    scale = rng.uniform(0.2, 2.0, size=(3, 4)).astype(np.float32)
    q = DiagonalNormal(loc=loc, scale_diag=scale)
    assert isinstance(q, tfp.distributions.MultivariateNormalDiag)
    # z [S, B, D]: each sample of each row against its own row's Gaussian.
    z = rng.normal(size=(5, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(q.log_prob(z), stats.norm(loc, scale).logpdf(z).sum(-1),
                               rtol=1e-5)
    standard = DiagonalNormal(loc=np.zeros(4, np.float32))
    np.testing.assert_allclose(standard.log_prob(z), stats.norm().logpdf(z).sum(-1), rtol=1e-5)
    # KL(N(m1, s1^2) || N(m2, s2^2)) per dimension, summed; against the identity scale too.
    p_loc = rng.normal(size=4).astype(np.float32)
    p_scale = rng.uniform(0.5, 1.5, size=4).astype(np.float32)
    p = DiagonalNormal(loc=p_loc, scale_diag=p_scale)

    def kl(m1, s1, m2, s2):
        return (np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5).sum(-1)

    np.testing.assert_allclose(q.kl_divergence(p), kl(loc, scale, p_loc, p_scale), rtol=1e-5)
    np.testing.assert_allclose(q.kl_divergence(standard), kl(loc, scale, 0.0, 1.0), rtol=1e-5)
    # ... and against TFP's own: a plain MultivariateNormalDiag goes by the linear operators.
    plain = tfp.distributions.MultivariateNormalDiag(loc=p_loc, scale_diag=p_scale)
    np.testing.assert_allclose(q.kl_divergence(p), q.kl_divergence(plain), rtol=1e-5)
    # Gradients flow to both sides' parameters through the written-out forms.
    loc_var = tf.Variable(loc)
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(DiagonalNormal(loc=loc_var, scale_diag=scale).kl_divergence(p))
    np.testing.assert_allclose(tape.gradient(value, loc_var), (loc - p_loc) / p_scale**2,
                               rtol=1e-5)

    # What it is for: a handful of graph ops where TFP's linear operators build several dozen.
    def ops(fn):
        return len(tf.function(fn).get_concrete_function().graph.get_operations())

    for kind in (DiagonalNormal, tfp.distributions.MultivariateNormalDiag):
        q_of_kind = kind(loc=loc, scale_diag=scale)
        p_of_kind = kind(loc=p_loc, scale_diag=p_scale)
        counts = ops(lambda: q_of_kind.log_prob(z)), ops(lambda: q_of_kind.kl_divergence(p_of_kind))
        assert (max(counts) < 30) == (kind is DiagonalNormal), (kind, counts)
