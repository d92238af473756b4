"""log p(x) estimators against a model whose marginal likelihood has a closed form, and on a VAE."""

import functools
import re

import keras
import numpy as np
import pytest
import scipy.stats
from scipy.special import logsumexp
import tensorflow as tf
import tensorflow_probability as tfp

from conftest import run_cli
from tfvae import InputError, estimators, log_likelihood
from tfvae.evaluation.likelihood import hmc_log_likelihood

tfd = tfp.distributions


class LinearGaussian(keras.layers.Layer):
    """p(z) = N(0, I), p(x|z) = N(W z + b, sigma^2 I): p(x) = N(b, W W^T + sigma^2 I) exactly.

    ``encode`` is a diagonal Gaussian near the true (full-covariance) posterior, wider by
    ``inflate``, so importance sampling has real variance to average out.
    """

    def __init__(self, W, b, sigma, inflate=1.2):
        super().__init__()
        self.W, self.b, self.sigma = np.asarray(W, float), np.asarray(b, float), float(sigma)
        d = self.W.shape[1]
        self.post_cov = np.linalg.inv(np.eye(d) + self.W.T @ self.W / sigma**2)
        self.post_gain = self.post_cov @ self.W.T / sigma**2
        self.inflate = inflate

    @property
    def prior(self):
        return tfd.MultivariateNormalDiag(loc=tf.zeros([self.W.shape[1]]))

    def decode(self, z):
        loc = tf.linalg.matvec(tf.constant(self.W, tf.float32), z) + tf.constant(self.b, tf.float32)
        return tfd.Independent(tfd.Normal(loc, self.sigma), reinterpreted_batch_ndims=1)

    def encode(self, x):
        mean = tf.linalg.matvec(tf.constant(self.post_gain, tf.float32),
                                x - tf.constant(self.b, tf.float32))
        scale = np.sqrt(np.diag(self.post_cov)) * self.inflate
        return tfd.MultivariateNormalDiag(mean, tf.constant(scale, tf.float32))

    def exact_log_px(self, x):
        cov = self.W @ self.W.T + self.sigma**2 * np.eye(len(self.b))
        return scipy.stats.multivariate_normal(self.b, cov).logpdf(np.asarray(x, float))


@pytest.fixture(scope="module")
def linear_gaussian():
    rng = np.random.default_rng(0)
    model = LinearGaussian(rng.normal(size=(10, 3)), rng.normal(size=10), sigma=0.5)
    z = rng.normal(size=(40, 3))
    x = z @ model.W.T + model.b + 0.5 * rng.normal(size=(40, 10))
    return model, x.astype(np.float32), model.exact_log_px(x)


def test_importance_sampling_matches_the_closed_form(linear_gaussian):
    model, x, exact = linear_gaussian
    result = log_likelihood(model, x, num_samples=5000, batch_size=16, seed=1)
    assert result.per_example.shape == (40,)
    assert abs(result.mean - exact.mean()) < 0.03
    assert np.max(np.abs(result.per_example - exact)) < 0.1


def test_hmc_estimator_of_appendix_d_matches_the_closed_form(linear_gaussian):
    model, x, exact = linear_gaussian
    result = hmc_log_likelihood(model, x, num_samples=400, num_chains=4, burnin=100, seed=2)
    assert abs(result.mean - exact.mean()) < 0.05
    assert np.max(np.abs(result.per_example - exact)) < 0.5
    assert 0.6 < result.acceptance < 0.95  # adapted toward 0.8
    # Also reachable through log_likelihood(method="hmc"), with the same numbers for one seed.
    again = log_likelihood(model, x[:5], 40, method="hmc", num_chains=4, burnin=20, seed=2)
    assert np.allclose(again.per_example, hmc_log_likelihood(
        model, x[:5], num_samples=40, num_chains=4, burnin=20, seed=2).per_example, atol=1e-4)


class Trap(keras.layers.Layer):
    """A 1-D latent whose posterior given x = 0 has a good mode at z = 1.5 and, behind a barrier
    at z = 0, a poor local mode at z = -1.5 with about e^-12 of the mass."""

    scale = 0.1
    prior = tfd.MultivariateNormalDiag(loc=tf.zeros([1]))

    def decode(self, z):
        z = z[..., 0]
        loc = tf.stack([z**2 - 2.25, 0.25 * (1 - tf.tanh(3 * z))], axis=-1)
        return tfd.Independent(tfd.Normal(loc, self.scale), reinterpreted_batch_ndims=1)

    def exact_log_px(self):
        # log of the integral of p(z) p(x = 0|z) over a fine grid
        z = np.linspace(-8, 8, 400_001)
        h = (z**2 - 2.25) ** 2 + (0.25 * (1 - np.tanh(3 * z))) ** 2
        log_joint = (-h / (2 * self.scale**2) - 2 * np.log(self.scale * np.sqrt(2 * np.pi))
                     - z**2 / 2 - 0.5 * np.log(2 * np.pi))
        return logsumexp(log_joint) + np.log(z[1] - z[0])


def test_hmc_chains_do_not_stay_in_a_poor_local_mode():
    model, x = Trap(), np.zeros((8, 2), np.float32)
    exact = model.exact_log_px()
    options = dict(num_samples=100, num_chains=4, burnin=100, seed=0)
    good = hmc_log_likelihood(model, x, init_candidates=2000, **options)
    assert np.max(np.abs(good.per_example - exact)) < 0.15
    # Chains started from plain prior draws (one candidate each) get trapped: the model does
    # test what the resampled start is for.
    trapped = hmc_log_likelihood(model, x, init_candidates=1, **options)
    assert np.max(np.abs(trapped.per_example - exact)) > 2


def test_one_sample_importance_estimate_is_a_lower_bound_on_average(linear_gaussian):
    # k = 1 is the ELBO of a posterior approximation that is not exact: below log p(x) by
    # KL(q || p(z|x)) > 0 on average.
    model, x, exact = linear_gaussian
    one = log_likelihood(model, np.repeat(x[:4], 500, axis=0), num_samples=1, seed=3)
    assert one.mean < exact[:4].mean() - 0.01


@pytest.fixture(scope="module")
def trained_vae(tiny_run):
    from tfvae.runs import RunDirectory, load_run

    model, config = load_run(tiny_run)
    return model, RunDirectory(tiny_run).load_dataset().x_test[:100]


def test_importance_estimate_on_a_vae_is_above_the_elbo_and_grows_with_k(trained_vae):
    model, x = trained_vae
    q = model.encode(x)
    elbo = estimators.elbo_terms(q, model.decode, model.prior, x, num_samples=200,
                                 seed=tf.constant([5, 0]))["elbo"].numpy().mean()
    estimates = [log_likelihood(model, x, num_samples=k, seed=k).mean for k in (1, 10, 100, 1000)]
    assert abs(estimates[0] - elbo) < 1.5  # k = 1 estimates the ELBO itself
    assert estimates[1] > estimates[0] and estimates[2] > estimates[1]
    assert estimates[3] > estimates[2]
    assert estimates[3] > elbo + 0.5


def test_chunks_of_samples_give_the_same_estimator(trained_vae):
    # Each chunk draws from its own seed, so chunks of 70 (the last of 40) make other draws
    # than one chunk of 600; combined exactly, the estimates differ by Monte Carlo noise alone
    # (a chunk's mean taken as the whole's would be log(600 / 70) ~ 2.1 nats off).
    model, x = trained_vae
    weights, seed = functools.partial(model.log_weights, x[:10]), tf.constant([7, 0])
    whole = estimators.importance_log_px(weights, num_samples=600, seed=seed, chunk_size=600)
    split = estimators.importance_log_px(weights, num_samples=600, seed=seed, chunk_size=70)
    difference = (whole - split).numpy()
    assert abs(difference.mean()) < 0.5, difference
    assert not np.array_equal(whole, split)


@pytest.mark.parametrize("kwargs, argument", [
    ({"method": "exact"}, "method"),
    ({"num_samples": 0}, "num_samples"),
    ({"method": "hmc", "num_samples": 10, "num_chains": 3}, "num_samples"),
    # Three draws of a 3-D z leave the fitted Gaussian's covariance singular.
    ({"method": "hmc", "num_samples": 3, "num_chains": 3}, "num_samples"),
    ({"method": "hmc", "target_accept": 1.5}, "target_accept"),
    ({"num_chains": 2}, "options"),
])
def test_bad_arguments_name_the_argument(linear_gaussian, kwargs, argument):
    model, x, _ = linear_gaussian
    with pytest.raises(InputError) as info:
        log_likelihood(model, x, **kwargs)
    assert info.value.argument == argument


def test_data_that_does_not_fit_the_model_is_refused(trained_vae):
    model, _ = trained_vae
    with pytest.raises(InputError, match="data"):
        log_likelihood(model, np.zeros((3, 10, 10, 1)), num_samples=5)


def test_importance_sampling_needs_an_encoder(linear_gaussian):
    model, x, _ = linear_gaussian

    class NoEncoder:
        prior, decode = model.prior, model.decode

    with pytest.raises(InputError, match="method='hmc'"):
        log_likelihood(NoEncoder(), x, num_samples=5)


def test_cli_evaluate_log_likelihood(tiny_run):
    result = run_cli("evaluate", tiny_run, "--log-likelihood", "--num-samples", "200")
    assert result.returncode == 0, result.stderr
    elbo = float(re.search(r"test elbo: (-?[\d.]+)", result.stdout).group(1))
    log_px = float(re.search(r"test log p\(x\): (-?[\d.]+)", result.stdout).group(1))
    assert "200 samples per example, 200 examples" in result.stdout
    assert elbo < log_px < elbo + 30  # above the bound, by a gap of a few nats at most
    assert "examples" in result.stderr  # progress


def test_cli_rejects_a_bad_sample_count(tiny_run):
    result = run_cli("evaluate", tiny_run, "--log-likelihood", "--num-samples", "0")
    assert result.returncode == 2
    assert "--num-samples" in result.stderr


def test_cli_refuses_hmc_sample_counts_it_cannot_use_before_any_work(tiny_run, capsys):
    from tfvae.cli import main

    assert main(["evaluate", str(tiny_run), "--log-likelihood", "--method", "hmc",
                 "--num-samples", "4"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # not after the bound's pass
    assert captured.err.strip() == (
        "tfvae evaluate: error: --num-samples: expected a multiple of 5 with --method hmc (the "
        "draws of 5 chains per example), got 4")


def test_a_chunk_of_samples_holds_as_many_values_whatever_the_decoder():
    from tfvae import VAE
    from tfvae.evaluation.likelihood import values_per_decoded_row

    mlp = VAE(image_shape=(28, 28, 1), latent_dim=4, hidden=500)
    # A hierarchy's top-down pass holds 16 channels at each of the 8 x 8 pixels.
    groups = VAE(image_shape=(8, 8, 1), latent_dim=2, hidden=16, architecture="resnet",
                 latent_groups=3)
    # A VampPrior's density of one z holds the mean and scale of each of its 50 components.
    vamp = VAE(image_shape=(28, 28, 1), latent_dim=40, hidden=64, prior="vamp",
               prior_components=50)
    assert [values_per_decoded_row(m) for m in (mlp, groups, vamp)] == [784, 1024, 4000]
    assert estimators.decoded_per_chunk(1024) * 1024 <= estimators.decoded_per_chunk(784) * 784


def test_cli_evaluate_of_one_example_claims_no_spread_and_no_collapse(tiny_run, tmp_path,
                                                                      capsys):
    from tfvae.cli import main

    images = (np.random.default_rng(2).random((3, 28, 28)) * 255).astype(np.uint8)
    np.savez(tmp_path / "one.npz", x_train=images[:2], x_test=images[2:])
    assert main(["evaluate", str(tiny_run), "--dataset", str(tmp_path / "one.npz"),
                 "--log-likelihood", "--num-samples", "5"]) == 0
    captured = capsys.readouterr()
    assert "active units: not counted on one example" in captured.out, captured.out
    assert "(one example: no s.e.; importance, 5 samples per example, 1 example)" in captured.out
    assert "warning" not in captured.err, captured.err
