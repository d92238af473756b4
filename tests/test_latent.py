"""Latent structure: learned priors (mixture of Gaussians, VampPrior), IAF posteriors and two
stochastic layers, each checked against densities computed here by hand."""

import argparse
import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp
from scipy.stats import norm

from conftest import ROOT
from test_export import INPUTS, assert_matches, reference
from tfvae import VAE, estimators, log_likelihood
from tfvae.cli import main
from tfvae.errors import InputError
from tfvae.export import export_model
from tfvae.models import load_model
from tfvae.runs import RunDirectory
from tfvae.training import execution

SHAPE = (6, 6, 1)
STRUCTURES = {
    "mog": {"prior": "mog", "prior_components": 3},
    "vamp": {"prior": "vamp", "prior_components": 3},
    # A flow posterior under a learned mixture prior: neither density has a closed-form KL.
    "iaf_mog": {"posterior": "iaf", "flow_steps": 2, "prior": "mog", "prior_components": 3},
    "two_layers": {"stochastic_layers": 2, "depth": 2},
}


def images(n=64, seed=0):
    """Binary 6x6 images: four prototypes with 10% of the pixels flipped."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((4, *SHAPE)) > 0.5
    x = prototypes[rng.integers(0, 4, n)] ^ (rng.random((n, *SHAPE)) < 0.1)
    return x.astype("float32")


def make(structure, latent_dim=2, hidden=16, **kwargs):
    return VAE(image_shape=SHAPE, latent_dim=latent_dim, hidden=hidden, seed=1,
               **{**STRUCTURES[structure], **kwargs})


@pytest.fixture(scope="module")
def trained():
    """Each structure trained briefly (a VAE by estimator A; IWAE k=5 for two layers)."""
    x = images(128)
    models = {}
    for name in STRUCTURES:
        extra = {"objective": "iwae", "num_samples": 5} if name == "two_layers" else {}
        model = make(name, **extra)
        model.compile(optimizer=keras.optimizers.Adam(0.01), jit_compile=False)
        model.fit(x, epochs=2, batch_size=32, verbose=0)
        models[name] = model
    return models


def randomize(layer, stddev=0.5, seed=0):
    """Random weights, so a flow that starts as the identity is not."""
    for i, v in enumerate(layer.weights):
        v.assign(tf.random.stateless_normal(v.shape, [seed, i], stddev=stddev))


def log_normal(z, loc, scale):
    return norm.logpdf(z, loc, scale).sum(-1)


# -- the densities --------------------------------------------------------------------------

def test_structures_say_they_use_estimator_a():
    for name in STRUCTURES:
        assert make(name).get_config()["kl"] == "sampled", name
    assert make("mog", prior="normal").get_config()["kl"] == "analytic"


def test_mixture_prior_density_and_kl_by_monte_carlo():
    model = make("mog", latent_dim=2)
    prior = model.prior_layer
    weights = np.array([0.2, 0.3, 0.5])
    locs = np.array([[-2.0, 0.0], [1.0, 1.0], [0.5, -1.5]])
    raw = np.array([[0.0, 0.5], [-0.5, 0.2], [0.3, -0.3]])
    prior.logits.assign(np.log(weights))
    prior.locs.assign(locs)
    prior.raw_scales.assign(raw)
    scales = np.log1p(np.exp(raw)) + 1e-4

    def log_p(z):  # [N, 2] -> [N]
        return logsumexp(np.log(weights) + log_normal(z[:, None], locs, scales), axis=1)

    z = np.random.default_rng(1).normal(size=(50, 2)).astype("float32") * 2
    np.testing.assert_allclose(model.prior.log_prob(z).numpy(), log_p(z), rtol=1e-5, atol=1e-5)
    _check_kl_by_monte_carlo(model, log_p)


def test_vamp_prior_density_and_kl_by_monte_carlo():
    model = make("vamp", latent_dim=2)
    randomize(model.prior_layer, stddev=2.0)
    u = model.prior_layer.pseudo_inputs.numpy()
    assert u.shape == (3, *SHAPE) and u.min() > 0 and u.max() < 1
    q_u = model.encode(u)
    loc, scale = q_u.mean().numpy(), q_u.stddev().numpy()  # [K, D]

    def log_p(z):  # the mean of the posterior's densities at the pseudo-inputs
        return logsumexp(log_normal(z[:, None], loc, scale), axis=1) - np.log(3)

    z = np.random.default_rng(1).normal(size=(50, 2)).astype("float32")
    np.testing.assert_allclose(model.prior.log_prob(z).numpy(), log_p(z), rtol=1e-5, atol=1e-5)
    _check_kl_by_monte_carlo(model, log_p)


def _check_kl_by_monte_carlo(model, log_p, n=20_000):
    """The model's sampled KL (estimator A, S = n) against KL(q || p) estimated here by numpy
    draws from q and the hand-written log p: both unbiased, so they agree within their errors."""
    x = images(2, seed=5)
    terms = model.bound_terms(x, seed=3)
    q = model.encode(x)
    loc, scale = q.mean().numpy(), q.stddev().numpy()  # [B, D]
    model_kl = estimators.elbo_terms(q, model.decode, model.prior, x, kl="sampled",
                                     num_samples=n, seed=tf.constant([4, 0]))["kl"].numpy()
    assert terms["kl"].shape == (2,)
    rng = np.random.default_rng(2)
    for b in range(2):
        z = loc[b] + scale[b] * rng.standard_normal((n, 2))
        values = log_normal(z, loc[b], scale[b]) - log_p(z)
        stderr = values.std() / np.sqrt(n)
        assert abs(model_kl[b] - values.mean()) < 5 * np.sqrt(2) * stderr + 1e-4, b


def test_flow_log_q_is_the_change_of_variables():
    model = make("iaf_mog", latent_dim=3)
    randomize(model.encoder.posterior)
    x = images(2, seed=3)
    q = model.encode(x)
    base = q.distribution
    z0 = base.sample(4, seed=tf.constant([1, 2]))  # [S, B, D]
    flow = q.bijector
    z = flow.forward(z0)
    # The Jacobian dz/dz0 of each draw, by automatic differentiation: no use of the masks.
    jacobian = _jacobians(flow, z0)
    log_det = np.linalg.slogdet(jacobian)[1].reshape(4, 2)
    by_hand = log_normal(z0.numpy(), base.mean().numpy(), base.stddev().numpy()) - log_det
    sampled = estimators.sample_posterior(q, 4, tf.constant([1, 2]))
    np.testing.assert_allclose(q.log_prob(z).numpy(), by_hand, rtol=1e-4, atol=1e-4)
    # The estimators' draw: log q from the flow's cache equals log q by its inverse.
    np.testing.assert_allclose(q.log_prob(sampled).numpy(),
                               q.log_prob(tf.identity(sampled) + 0.0).numpy(), atol=1e-4)
    # Autoregressive: each step's Jacobian is triangular (in its own order), so their product
    # is not diagonal, yet its determinant is the product of the diagonals' per step.
    assert np.abs(jacobian[0] - np.diag(np.diag(jacobian[0]))).max() > 1e-3


def _jacobians(flow, z0):
    """dz/dz0 [S*B, D, D] of the flow at each draw z0 [S, B, D] (row b of a draw given the
    context of example b)."""
    out = []
    for draw in z0:  # [B, D]
        with tf.GradientTape() as tape:
            tape.watch(draw)
            image = flow.forward(draw)
        full = tape.jacobian(image, draw).numpy()  # [B, D, B, D]
        out.extend(full[b, :, b, :] for b in range(full.shape[0]))
    return np.stack(out)


def test_two_layers_densities_by_hand():
    model = make("two_layers", latent_dim=4)
    randomize(model.encoder.posterior.second, seed=1)
    randomize(model.prior_layer, seed=2)
    x = images(3, seed=4)
    q = model.encode(x)
    z = estimators.sample_posterior(q, 5, tf.constant([7, 0])).numpy()  # [5, 3, 6]
    z1, z2 = z[..., :4], z[..., 4:]
    q1 = model.encoder.posterior.first(model.encoder.body(x))
    m, log_s = (t.numpy() for t in model.encoder.posterior.second(z1))
    log_q = log_normal(z1, q1.mean().numpy(), q1.stddev().numpy()) + \
        log_normal(z2, m, np.exp(log_s))
    np.testing.assert_allclose(q.log_prob(z).numpy(), log_q, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(q.log_prob(tf.constant(z) + 0.0).numpy(), log_q, rtol=1e-4,
                               atol=1e-4)
    m, log_s = (t.numpy() for t in model.prior_layer.first(z2))
    log_p = log_normal(z2, 0.0, 1.0) + log_normal(z1, m, np.exp(log_s))
    np.testing.assert_allclose(model.prior.log_prob(z).numpy(), log_p, rtol=1e-4, atol=1e-4)
    # p(x|z) reads z1 alone.
    moved = np.concatenate([z1, z2 + 5.0], -1)
    np.testing.assert_allclose(model.decode(moved).mean().numpy(), model.decode(z).mean().numpy())


# -- training, bounds, saving ---------------------------------------------------------------

@pytest.mark.parametrize("name", list(STRUCTURES))
def test_bounds_lie_below_the_importance_sampled_log_likelihood(trained, name):
    model = trained[name]
    x = images(40, seed=9)
    q = model.encode(x)
    elbo = estimators.elbo_terms(q, model.decode, model.prior, x, kl="sampled", num_samples=20,
                                 seed=tf.constant([4, 0]))["elbo"].numpy()
    iwae = estimators.iwae_terms(q, model.decode, model.prior, x, num_samples=50,
                                 seed=tf.constant([5, 0]))["iwae"].numpy()
    log_px = log_likelihood(model, x, 1000, seed=1, batch_size=40).per_example
    assert np.all(np.isfinite(log_px))
    # The mean over examples: each bound's sampling noise is well under these gaps.
    assert elbo.mean() < iwae.mean() < log_px.mean() + 0.05
    assert log_px.mean() - elbo.mean() > 0.01


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_save_and_load_give_identical_outputs(trained, name, tmp_path):
    model = trained[name]
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    assert loaded.get_config() == model.get_config()
    x = images(5, seed=2)
    for fn in (lambda m: m.elbo(x, seed=4), lambda m: m.reconstruct(x),
               lambda m: m.sample(3, seed=5), lambda m: m.encode(x).stddev(),
               lambda m: m.prior.log_prob(m.encode(x).mean())):
        np.testing.assert_array_equal(fn(loaded).numpy(), fn(model).numpy())


# -- refusals ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, argument", [
    ({"prior": "vamp", "num_classes": 3}, "prior"),
    ({"prior": "vamp", "posterior": "iaf"}, "prior"),
    ({"posterior": "iaf", "objective": "iwae", "gradient": "dreg"}, "gradient"),
    ({"prior": "vamp", "kl": "sampled", "gradient": "stl"}, "gradient"),
    ({"stochastic_layers": 2, "prior": "mog"}, "stochastic_layers"),
    ({"stochastic_layers": 3}, "stochastic_layers"),
    ({"stochastic_layers": 2, "latent_dim": 1}, "latent_dim"),
    ({"prior": "mog", "free_bits": 0.5}, "free_bits"),
    ({"prior": "gauss"}, "prior"),
    ({"flow_steps": 0, "posterior": "iaf"}, "flow_steps"),
])
def test_combinations_refused_with_the_argument_named(kwargs, argument):
    with pytest.raises(InputError, match=f"^{argument}: expected"):
        VAE(image_shape=SHAPE, **{"latent_dim": 2, "hidden": 8, **kwargs})


@pytest.mark.parametrize("name", ["iaf_mog", "two_layers"])
def test_structures_with_a_conditional_model(name):
    model = make(name, num_classes=2)
    x, y = images(32), np.arange(32) % 2
    model.compile(optimizer="adam")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(model.elbo(x[:4], seed=1, labels=y[:4]).numpy()).all()
    assert model.sample(2, seed=1, labels=1).shape == (2, *SHAPE)


# -- export ----------------------------------------------------------------------------------

TF1_WITHOUT_TFVAE = """
import json, sys
for name in ("tfvae", "tensorflow_probability", "keras", "tf_keras"):
    sys.modules[name] = None  # import of any of these now fails
import numpy as np
import tensorflow as tf
inputs_path, signatures, *exports = sys.argv[1:]
inputs = np.load(inputs_path)
for export_dir in exports:
    out = {}
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
        for sig, names in json.loads(signatures).items():
            signature = meta_graph.signature_def[sig]
            aliases = list(signature.outputs)
            values = session.run([signature.outputs[a].name for a in aliases],
                                 {signature.inputs[n].name: inputs[f"{n}_{export_dir}"]
                                  for n in names})
            out.update({f"{sig}/{a}": v for a, v in zip(aliases, values)})
    np.savez(export_dir + ".npz", **out)
"""


def test_exports_answer_through_the_tf1_loader_without_tfvae(trained, tmp_path):
    names = ["vamp", "iaf_mog", "two_layers"]
    paths, inputs, want = [], {}, {}
    for name in names:
        model = trained[name]
        path = str(export_model(model, tmp_path / name / "1", num_samples=50))
        given = {"x": images(3, seed=6), "seed": np.array([0, 7, 2**40 + 3], np.int64),
                 "z": np.random.default_rng(0).standard_normal((3, model.latent_dim), np.float32)}
        inputs.update({f"{key}_{path}": value for key, value in given.items()})
        want[path] = reference(model, given, num_samples=50)
        paths.append(path)
    np.savez(tmp_path / "inputs.npz", **inputs)
    (tmp_path / "tf1.py").write_text(TF1_WITHOUT_TFVAE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, str(tmp_path / "tf1.py"), str(tmp_path / "inputs.npz"),
         json.dumps(INPUTS), *paths], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for path in paths:
        with np.load(path + ".npz") as got:
            assert_matches(dict(got), want[path], tol=1e-4)


# -- the command line ---------------------------------------------------------------------

def test_cli_trains_a_structure_into_config_json(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--train-examples", "100", "--test-examples", "50",
                 "--epochs", "1", "--latent-dim", "4", "--hidden", "16", "--prior", "vamp",
                 "--prior-components", "5", "--quiet", "--jit-compile", "off"]) == 0
    config = RunDirectory(out).read_config()["model"]
    assert (config["prior"], config["prior_components"], config["kl"]) == ("vamp", 5, "sampled")
    model = RunDirectory(out).load_model()
    assert (model.prior_name, model.prior_components, model.kl) == ("vamp", 5, "sampled")


# -- the likelihood table -------------------------------------------------------------------

def test_likelihood_table_schedule_resume_and_table(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import likelihood_table as table

    # The cpu budget's run is open-ended, so "auto" would time XLA for it first (six timed fits):
    # that timing is test_fast_training's; here it decides nothing the assertions read.
    monkeypatch.setattr(execution, "XLA_NEVER_BELOW", math.inf)

    rates = [table.paper_learning_rate(e) for e in range(3280)]
    # 3^i epochs at 1e-3 * 10^(-i/7): 1 at 1e-3, 3 at 10^(-3 - 1/7), ..., the last 2187 at 1e-4.
    assert rates[0] == pytest.approx(1e-3) and rates[1] == rates[3] == pytest.approx(
        1e-3 * 10 ** (-1 / 7)) and rates[4] == pytest.approx(1e-3 * 10 ** (-2 / 7))
    assert rates[3279] == rates[1093] == pytest.approx(1e-4) and rates[1092] > 1e-4
    run_dir = tmp_path / "vae"
    args = ["vae", run_dir, "cpu", 0.001, 100, 200, 20, 10]
    table.child(*args)
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["epochs"] == 1 and 400 < first["nll"] < 600  # ~545 for 784 coin flips
    table.child(*args)  # the budget is spent: nothing trains, the score is kept
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == first
    # The paper budget's schedule reaches the optimizer: epsilon, and each epoch's rate.
    model = make("mog")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    schedule = table.callbacks("paper", tmp_path / "clock.json", 0)[0]
    schedule.set_model(model)
    schedule.on_train_begin()
    schedule.on_epoch_begin(40)  # opens stage i = 4, epochs 40..120
    assert model.optimizer.epsilon == 1e-4
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3 * 10 ** (-4 / 7))
    rows = [{"model": "VAE", **first, "published": 86.76, "source": "IWAE"}]
    table.write_tables(rows, tmp_path, argparse.Namespace(budget="cpu", minutes=0.001, k=10,
                                                           test_examples=20))
    assert "| VAE | 1 |" in (tmp_path / "likelihood_table.md").read_text()
    assert "86.76" in (tmp_path / "likelihood_table.csv").read_text()


def test_draws_from_given_noise_follow_each_prior():
    """The exports' draws of p(z) from their own noise: a mixture's components at its weights,
    and each prior's mean and spread, checked against the distribution's own moments."""
    import tensorflow_probability as tfp

    from tfvae.estimators import draw_from_noise

    tfd = tfp.distributions
    rng = np.random.default_rng(0)
    n = 40_000
    eps = tf.constant(rng.standard_normal((n, 2)), tf.float32)
    u = tf.constant(rng.random(n), tf.float32)
    mixture = tfd.MixtureSameFamily(
        tfd.Categorical(probs=[0.2, 0.5, 0.3]),
        tfd.MultivariateNormalDiag(loc=[[-4.0, 0.0], [0.0, 3.0], [5.0, -2.0]],
                                   scale_diag=[[0.5, 0.5], [1.0, 0.2], [0.3, 1.5]]))
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc=[1.0, -1.0]),
                                       tfp.bijectors.Shift([2.0, 0.5]))
    for distribution in (mixture, flow, tfd.MultivariateNormalDiag(loc=[0.0, 0.0])):
        z = draw_from_noise(distribution, eps, u).numpy()
        reference = distribution.sample(n, seed=1).numpy()
        # Means and spreads agree within a few standard errors of a mean of n draws.
        tolerance = 5 * reference.std(axis=0) / np.sqrt(n)
        np.testing.assert_array_less(np.abs(z.mean(axis=0) - reference.mean(axis=0)),
                                     2 * tolerance)
        np.testing.assert_allclose(z.std(axis=0), reference.std(axis=0), rtol=0.03)
    z = draw_from_noise(mixture, eps, u).numpy()
    nearest = np.argmin(((z[:, None, :] - mixture.components_distribution.mean().numpy()) ** 2)
                        .sum(-1), axis=1)
    np.testing.assert_allclose(np.bincount(nearest) / n, [0.2, 0.5, 0.3], atol=0.01)
