"""The autoencoder baseline: a deterministic code, the VAE's bodies, and the same run directory."""

import keras
import numpy as np
import pytest

from tfvae import VAE, Autoencoder, InputError
from tfvae.cli import main
from tfvae.layers.bodies import MLP
from tfvae.runs import RunDirectory, load_run
from tfvae.storage import read_json
from tfvae.training.pipeline import train


def _digits(n=64, seed=0):
    return (np.random.default_rng(seed).random((n, 28, 28, 1)) < 0.3).astype(np.float32)


def test_train_cli_writes_an_autoencoder_run(tmp_path, capsys):
    run = tmp_path / "ae"
    assert main(["train", "--model", "autoencoder", "--out", str(run), "--train-examples", "500",
                 "--test-examples", "100", "--latent-dim", "3", "--hidden", "32", "--epochs", "2",
                 "--optimizer", "adam", "--learning-rate", "0.003", "--quiet"]) == 0
    assert "tfvae train: test reconstruction" in capsys.readouterr().out
    rows = RunDirectory(run).read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2]
    # No ELBO or KL for an autoencoder: those cells stay empty; the reconstruction improves.
    assert all(r["train_elbo"] is None and r["test_kl"] is None for r in rows)
    assert rows[1]["train_reconstruction"] > rows[0]["train_reconstruction"]
    assert -544 < rows[1]["test_reconstruction"] < 0  # 784 * log 2 is a coin flip per pixel
    state = read_json(run / "state.json")
    assert state["status"] == "finished"
    assert state["best_test_elbo"] == pytest.approx(max(r["test_reconstruction"] for r in rows))
    assert (run / "checkpoints" / "best.keras").is_file()

    model, config = load_run(run)
    assert isinstance(model, Autoencoder) and model.latent_dim == 3
    # The code is deterministic, so the final model gives the logged test reconstruction again.
    x_test = RunDirectory(run).load_dataset().x_test
    assert float(np.mean(model.log_likelihood(x_test))) == pytest.approx(
        rows[1]["test_reconstruction"], rel=1e-4)

    assert main(["evaluate", str(run), "--batch-size", "50"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("test reconstruction: ")
    assert float(printed.split()[2]) == pytest.approx(rows[1]["test_reconstruction"], abs=2e-4)


def test_code_is_deterministic_and_encode_is_a_point_mass():
    ae = Autoencoder(latent_dim=3, hidden=16, seed=0)
    x = _digits(8)
    q = ae.encode(x)
    np.testing.assert_array_equal(q.mean(), ae.code(x))
    np.testing.assert_array_equal(q.sample(seed=(1, 2)), ae.code(x))
    np.testing.assert_array_equal(q.stddev(), np.zeros((8, 3)))
    np.testing.assert_array_equal(ae.encode(x).mean(), q.mean())
    np.testing.assert_allclose(ae.reconstruct(x), ae.decode(ae.code(x)).mean())


def test_reconstruction_is_the_bernoulli_log_likelihood_at_the_code():
    ae = Autoencoder(latent_dim=2, hidden=8, seed=0)
    ae.compile(optimizer="adam")
    x = _digits(32)
    p = np.clip(ae.reconstruct(x).numpy().astype(np.float64), 1e-12, 1 - 1e-12)
    by_hand = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2, 3))
    logs = ae.evaluate(x, batch_size=32, verbose=0, return_dict=True)
    assert logs["reconstruction"] == pytest.approx(by_hand.mean(), rel=1e-4)
    assert logs["loss"] == pytest.approx(-by_hand.mean(), rel=1e-4)
    assert set(logs) == {"loss", "reconstruction"}


def test_shares_the_vae_bodies():
    kwargs = dict(latent_dim=5, hidden=32, depth=2, activation="relu")
    ae, vae = Autoencoder(**kwargs), VAE(**kwargs)
    for part in ("encoder", "decoder"):
        a, v = getattr(ae, part).body, getattr(vae, part).body
        assert isinstance(a, MLP) and type(a) is type(v)
        assert a.get_config() == v.get_config()
        assert a.count_params() == v.count_params() == (784 * 32 + 32 + 32 * 32 + 32
                                                        if part == "encoder" else
                                                        5 * 32 + 32 + 32 * 32 + 32)
    # The code head outputs D values; the VAE's posterior head outputs a mean and a scale each.
    assert ae.encoder.code.kernel.shape == (32, 5)
    assert vae.encoder.posterior.params.kernel.shape == (32, 10)


def test_save_and_load_give_the_same_model(tmp_path):
    ae = Autoencoder(latent_dim=3, hidden=16, architecture="mlp", seed=0)
    ae.save(tmp_path / "ae.keras")
    loaded = keras.saving.load_model(tmp_path / "ae.keras")
    x = _digits(4)
    np.testing.assert_allclose(loaded.reconstruct(x), ae.reconstruct(x), rtol=1e-6)
    assert loaded.get_config()["latent_dim"] == 3


@pytest.mark.parametrize("option", [{"objective": "iwae"}, {"kl": "sampled"},
                                    {"num_samples": 5}])
def test_rejects_vae_only_options_before_writing(tmp_path, option):
    (argument,) = option
    with pytest.raises(InputError) as info:
        train(tmp_path / "run", model="autoencoder", model_config={"hidden": 8, **option},
              data_config={"name": "mnist", "train_examples": 10, "test_examples": 10},
              epochs=1, verbose=0)
    assert info.value.argument == argument
    assert not (tmp_path / "run").exists()


def test_sample_decodes_standard_normal_points():
    ae = Autoencoder(latent_dim=3, hidden=16, seed=0)
    images = ae.sample(6, seed=7).numpy()
    assert images.shape == (6, 28, 28, 1)
    np.testing.assert_array_equal(images, ae.sample(6, seed=7))
    assert not np.allclose(images, ae.sample(6, seed=8))
