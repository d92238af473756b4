"""The SGVB estimators against math that can be derived."""

import functools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import VAE, estimators

tfd = tfp.distributions


def test_analytic_kl_matches_a_monte_carlo_kl():
    q = tfd.MultivariateNormalDiag(loc=[[0.5, -1.0, 2.0]], scale_diag=[[0.3, 1.5, 0.8]])
    prior = tfd.MultivariateNormalDiag(loc=tf.zeros(3))
    z = q.sample(200_000, seed=[1, 2])
    monte_carlo = tf.reduce_mean(q.log_prob(z) - prior.log_prob(z)).numpy()
    analytic = q.kl_divergence(prior).numpy()[0]
    # Closed form for a diagonal Gaussian against N(0, I).
    mu, s = np.array([0.5, -1.0, 2.0]), np.array([0.3, 1.5, 0.8])
    assert analytic == pytest.approx(0.5 * np.sum(s**2 + mu**2 - 1 - 2 * np.log(s)), rel=1e-5)
    assert monte_carlo == pytest.approx(analytic, abs=0.02)


@pytest.fixture(scope="module")
def model_and_x():
    model = VAE(latent_dim=3, hidden=16, seed=0)
    x = (np.random.default_rng(0).uniform(size=(8, 28, 28, 1)) > 0.5).astype(np.float32)
    return model, x


def test_estimators_a_and_b_agree_in_expectation(model_and_x):
    model, x = model_and_x
    q = model.encode(x)
    terms = {kl: estimators.elbo_terms(q, model.decode, model.prior, x, kl=kl,
                                       num_samples=4000, seed=tf.constant([3, 4]))
             for kl in ("analytic", "sampled")}
    # Same z draws: the reconstruction parts are identical, the KL parts agree in expectation.
    np.testing.assert_allclose(terms["analytic"]["reconstruction"],
                               terms["sampled"]["reconstruction"])
    # Within five standard errors of estimator A's KL, measured on other draws of z.
    z = q.sample(4000, seed=[9, 9])
    standard_error = np.std(q.log_prob(z) - model.prior.log_prob(z), axis=0) / np.sqrt(4000)
    np.testing.assert_array_less(np.abs(terms["analytic"]["elbo"] - terms["sampled"]["elbo"]),
                                 5 * standard_error)
    # Estimator A's KL really is sampled: it differs from the analytic one for finite samples.
    small = estimators.elbo_terms(q, model.decode, model.prior, x, kl="sampled", num_samples=1,
                                  seed=tf.constant([5, 6]))
    assert not np.allclose(small["kl"], terms["analytic"]["kl"])


def test_iwae_bound_lies_between_elbo_and_log_px(model_and_x):
    model, x = model_and_x
    q = model.encode(x)
    seed = tf.constant([7, 8])
    iwae = estimators.iwae_terms(q, model.decode, model.prior, x, num_samples=1, seed=seed)
    sampled = estimators.elbo_terms(q, model.decode, model.prior, x, kl="sampled",
                                    num_samples=1, seed=seed)
    np.testing.assert_allclose(iwae["iwae"], sampled["elbo"], rtol=1e-6)  # k = 1: the ELBO
    elbo = estimators.elbo_terms(q, model.decode, model.prior, x, num_samples=500,
                                 seed=seed)["elbo"].numpy()
    bound_50 = estimators.iwae_terms(q, model.decode, model.prior, x, num_samples=50,
                                     seed=seed)["iwae"].numpy()
    log_px = estimators.importance_log_px(
        functools.partial(estimators.log_weights, q, model.decode, model.prior, x),
        num_samples=2000, seed=seed, chunk_size=300).numpy()
    # E[IWAE_k] >= ELBO; the per-example gaps here are about a nat, well above the noise.
    assert np.all(bound_50 > elbo) and np.all(log_px > elbo)


def test_importance_log_px_combines_chunks_exactly():
    # With q = p(z) and a decoder that ignores z, every weight is p(x): the estimate must be
    # exactly log p(x) for any chunking, remainder chunk included.
    x = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], np.float32)
    logits = np.array([0.3, -1.2, 2.0], np.float32)
    q = tfd.MultivariateNormalDiag(loc=tf.zeros([2, 4]))

    def decode(z):
        batch = tf.shape(z)[:-1]
        return tfd.Independent(tfd.Bernoulli(logits=tf.broadcast_to(
            logits, tf.concat([batch, [3]], 0)), dtype=tf.float32), 1)

    exact = decode(tf.zeros([2, 4])).log_prob(x).numpy()
    prior = tfd.MultivariateNormalDiag(loc=tf.zeros(4))
    for chunk_size in (1000, 300, 7):
        estimate = estimators.importance_log_px(
            functools.partial(estimators.log_weights, q, decode, prior, x), num_samples=1000,
            seed=tf.constant([1, 1]), chunk_size=chunk_size)
        np.testing.assert_allclose(estimate, exact, rtol=1e-5)
