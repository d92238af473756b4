"""The training controls: beta, KL warm-up, free bits, and the DReG and STL gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import VAE, InputError, estimators
from tfvae.models import WakeSleep, load_model

tfd = tfp.distributions
X = (np.random.default_rng(0).random((16, 28, 28, 1)) < 0.3).astype(np.float32)


def _compiled(**controls):
    keras.utils.set_random_seed(0)
    model = VAE(latent_dim=4, hidden=16, seed=0, **controls)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    return model


def test_without_controls_the_loss_is_minus_the_mean_bound():
    for kl in ("analytic", "sampled"):
        model = _compiled(kl=kl)
        terms = model._bound_terms(tf.constant(X), tf.constant([3, 4], tf.int32), None)
        np.testing.assert_allclose(model.training_loss(terms), -np.mean(terms["bound"]),
                                   rtol=1e-6)


def test_beta_weights_the_kl_in_the_loss_and_not_in_the_elbo():
    model = _compiled(beta=4.0)
    terms = model._bound_terms(tf.constant(X), tf.constant([3, 4], tf.int32), None)
    expected = -np.mean(terms["reconstruction"]) + 4.0 * np.mean(terms["kl"])
    np.testing.assert_allclose(model.training_loss(terms), expected, rtol=1e-6)
    np.testing.assert_allclose(terms["elbo"], terms["reconstruction"] - terms["kl"], rtol=1e-6)


def test_warm_up_weight_rises_linearly_and_continues_after_a_resume(tmp_path):
    weights = [float(estimators.kl_weight(step, beta=2.0, warmup_steps=10))
               for step in (0, 5, 10, 30)]
    assert weights == pytest.approx([0.0, 1.0, 2.0, 2.0])
    model = _compiled(kl_warmup_steps=10)
    model.fit(X, batch_size=4, epochs=1, verbose=0)  # 4 steps
    assert float(estimators.kl_weight(model.optimizer.iterations, 1.0, 10)) == pytest.approx(0.4)
    model.save(tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    assert again.kl_warmup_steps == 10
    assert float(estimators.kl_weight(again.optimizer.iterations, 1.0, 10)) == pytest.approx(0.4)
    again.fit(X, batch_size=4, epochs=1, verbose=0)
    assert int(again.optimizer.iterations) == 8


def _posterior_gradient(model, free_bits):
    model.free_bits = free_bits
    layer = model.encoder.posterior.params
    with tf.GradientTape() as tape:
        terms = model._bound_terms(tf.constant(X), tf.constant([3, 4], tf.int32), None)
        loss = model.training_loss(terms)
    grad = tape.gradient(loss, layer.kernel).numpy()
    d = model.latent_dim
    return np.abs(grad[:, :d]).sum(0) + np.abs(grad[:, d:]).sum(0), terms


def test_free_bits_changes_the_gradient_of_the_dimensions_under_the_floor_only():
    model = _compiled(free_bits=0.5)
    base, terms = _posterior_gradient(model, 0.0)
    kl_dims = np.mean(estimators.kl_per_dimension(model.encode(X), model.prior), axis=0)
    np.testing.assert_allclose(np.sum(kl_dims), np.mean(terms["kl"]), rtol=1e-5)
    floor = float(np.median(kl_dims))  # half the dimensions under it
    floored, _ = _posterior_gradient(model, floor)
    under = kl_dims < floor
    assert under.any() and (~under).any()
    np.testing.assert_allclose(floored[~under], base[~under], rtol=1e-5)
    assert np.all(np.abs(floored[under] - base[under]) > 1e-6 * np.abs(base[under]))


def _linear_gaussian_gradients(gradient, k, draws=20000):
    """``draws`` independent estimates of the gradient of the IWAE bound in the encoder's
    parameters (a, b, c) of q(z|x) = N(a x + b, exp(c)^2), for p(z) = N(0, 1), p(x|z) = N(z, 1)
    and one x. Each draw is a batch row with its own copy of the parameters and its own noise,
    so one backward pass gives every draw's gradient."""
    x = tf.fill([draws, 1], 1.5)
    phi = tf.Variable(tf.tile([[0.3, 0.2, -0.5]], [draws, 1]))
    prior = tfd.MultivariateNormalDiag(loc=[0.0])

    def decode(z):
        return tfd.Independent(tfd.Normal(z, 1.0), reinterpreted_batch_ndims=1)

    with tf.GradientTape() as tape:
        q = tfd.MultivariateNormalDiag(loc=phi[:, :1] * x + phi[:, 1:2],
                                       scale_diag=tf.exp(phi[:, 2:]))
        terms = estimators.iwae_terms(q, decode, prior, x, num_samples=k,
                                      seed=tf.constant([5, 7], tf.int32),
                                      stop_q=gradient == "dreg")
        target = (estimators.dreg_surrogate(terms["log_w"]) if gradient == "dreg"
                  else terms["iwae"])
        total = tf.reduce_sum(target)
    return tape.gradient(total, phi).numpy()


def test_dreg_gradient_agrees_in_mean_with_the_standard_one_and_varies_less():
    standard = _linear_gaussian_gradients("standard", k=10)
    dreg = _linear_gaussian_gradients("dreg", k=10)
    n = len(standard)
    # Both estimate the gradient of the same bound: their means agree within 5 standard errors.
    stderr = np.sqrt(standard.var(0) / n + dreg.var(0) / n)
    assert np.all(np.abs(standard.mean(0) - dreg.mean(0)) < 5 * stderr), (
        standard.mean(0), dreg.mean(0), stderr)
    # Lower variance, beyond what the sampling noise of two variance estimates allows: the
    # ratio of sample variances of n draws has a standard error of about sqrt(4 / n) for
    # near-normal gradients.
    ratio = dreg.var(0) / standard.var(0)
    assert np.all(ratio < 1 - 5 * np.sqrt(4 / n)), ratio


def test_dreg_and_stl_train_and_controls_refuse_objectives_they_do_not_apply_to():
    dreg = _compiled(objective="iwae", num_samples=4, gradient="dreg")
    history = dreg.fit(X, batch_size=8, epochs=3, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    stl = _compiled(kl="sampled", gradient="stl")
    assert np.all(np.isfinite(stl.fit(X, batch_size=8, epochs=2, verbose=0).history["loss"]))
    for controls, argument in (({"gradient": "dreg"}, "gradient"),
                               ({"gradient": "stl"}, "gradient"),
                               ({"objective": "iwae", "beta": 2.0}, "beta"),
                               ({"objective": "iwae", "free_bits": 0.1}, "free_bits"),
                               ({"beta": -1.0}, "beta"), ({"kl_warmup_steps": -1},
                                                          "kl_warmup_steps")):
        with pytest.raises(InputError) as info:
            VAE(latent_dim=2, hidden=4, **controls)
        assert info.value.argument == argument
    with pytest.raises(InputError, match="wake-sleep"):
        WakeSleep(latent_dim=2, hidden=4, beta=2.0)


def test_the_cli_trains_with_the_controls_and_records_them(tmp_path, capsys):
    from tfvae.cli import main
    from tfvae.runs import RunDirectory, load_run

    tiny = ["--train-examples", "300", "--test-examples", "100", "--hidden", "16",
            "--latent-dim", "3", "--quiet"]
    run_dir = tmp_path / "run"
    assert main(["train", "--out", str(run_dir), "--beta", "4", "--kl-warmup-epochs", "1",
                 "--free-bits", "0.1", "--epochs", "2", *tiny]) == 0
    config = RunDirectory(run_dir).read_config()
    assert (config["model"]["beta"], config["model"]["free_bits"]) == (4.0, 0.1)
    assert config["model"]["kl_warmup_steps"] == 3 and config["train"]["kl_warmup_epochs"] == 1
    model, _ = load_run(run_dir)
    assert (model.beta, model.kl_warmup_steps, model.free_bits) == (4.0, 3, 0.1)
    rows = RunDirectory(run_dir).read_metrics()
    # The logged elbo is the bound itself: reconstruction minus KL, whatever beta trains.
    for row in rows:
        assert row["test_elbo"] == pytest.approx(row["test_reconstruction"] - row["test_kl"],
                                                 abs=1e-3)
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "b"), "--gradient", "dreg", *tiny]) == 2
    assert "gradient: expected 'dreg' with objective='iwae'" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "c"), "--model", "autoencoder", "--beta", "2",
                 *tiny]) == 2
    assert "--model" in capsys.readouterr().err


def test_active_units_and_the_kl_of_each_dimension():
    from tfvae.evaluation.diagnostics import latent_diagnostics

    model = _compiled()
    kernel, bias = model.encoder.posterior.params.get_weights()
    kernel[:, [0, 2]] = 0.0  # the means of dimensions 0 and 2 no longer depend on x
    model.encoder.posterior.params.set_weights([kernel, bias])
    x = (np.random.default_rng(1).random((200, 28, 28, 1)) < 0.3).astype(np.float32)
    diagnostics = latent_diagnostics(model, x, batch_size=64)
    q = model.encode(x)
    mu, s = q.mean().numpy(), q.stddev().numpy()
    expected_kl = np.mean(0.5 * (mu ** 2 + s ** 2 - 1) - np.log(s), axis=0)  # vs N(0, 1)
    np.testing.assert_allclose(diagnostics["kl_per_dimension"], expected_kl, rtol=1e-4)
    np.testing.assert_allclose(diagnostics["mean_variance"], mu.var(axis=0), rtol=1e-4)
    active = mu.var(axis=0) > 0.01
    assert not active[0] and not active[2]
    assert diagnostics["active_units"] == int(active.sum())


def test_each_epoch_records_the_active_units_and_evaluate_prints_them(tmp_path, capsys):
    from tfvae.cli import main
    from tfvae.runs import RunDirectory

    run_dir = tmp_path / "run"
    assert main(["train", "--out", str(run_dir), "--train-examples", "300", "--test-examples",
                 "100", "--hidden", "16", "--latent-dim", "3", "--epochs", "2", "--quiet"]) == 0
    rows = RunDirectory(run_dir).read_metrics()
    for row in rows:
        assert 0 <= row["active_units"] <= 3 and len(row["kl_per_dimension"]) == 3
        assert sum(row["kl_per_dimension"]) == pytest.approx(row["test_kl"], rel=0.05, abs=0.05)
    capsys.readouterr()
    assert main(["evaluate", str(run_dir)]) == 0
    assert "active units: " in capsys.readouterr().out


def test_an_epoch_without_active_units_warns_of_collapse_and_names_the_warm_up(
        tmp_path, capsys, monkeypatch):
    from tfvae.training import callbacks
    from tfvae.cli import main

    def collapsed(model, x, **kwargs):
        return {"active_units": 0, "mean_variance": np.zeros(3),
                "kl_per_dimension": np.zeros(3)}

    monkeypatch.setattr(callbacks, "latent_diagnostics", collapsed)
    tiny = ["--train-examples", "200", "--test-examples", "100", "--hidden", "8",
            "--latent-dim", "3", "--epochs", "1", "--quiet"]
    assert main(["train", "--out", str(tmp_path / "a"), *tiny]) == 0
    err = capsys.readouterr().err
    assert "epoch 1: no active latent unit: posterior collapse" in err
    assert "--kl-warmup-epochs" in err
    # With a warm-up already on, the warning names no remedy it has.
    assert main(["train", "--out", str(tmp_path / "b"), "--kl-warmup-epochs", "1", *tiny]) == 0
    err = capsys.readouterr().err
    assert "posterior collapse" in err and "--kl-warmup-epochs" not in err
