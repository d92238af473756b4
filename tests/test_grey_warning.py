"""The warning of a decoder that ignores z: once training ends, when the test reconstructions are
no better than the training images' mean, which the active units alone do not show."""

import keras
import numpy as np
import pytest

from tfvae.evaluation import diagnostics
from tfvae.evaluation.diagnostics import GREY, reconstruction_errors
from tfvae.models import VAE
from tfvae.training.callbacks import LatentDiagnostics


def easy_images(n, seed=0):
    """8x8 images, each the left or the right half white."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 8, 8, 1), np.float32)
    right = rng.integers(0, 2, n).astype(bool)
    x[right, :, 4:] = 1.0
    x[~right, :, :4] = 1.0
    return x


def warned(model, x, mean_image, capsys):
    callback = LatentDiagnostics(x, mean_image=mean_image)
    callback.set_model(model)
    callback.on_epoch_end(0, {"loss": 1.0})
    callback.on_train_end()
    return GREY in capsys.readouterr().err


def test_a_decoder_that_ignores_z_is_warned_of(capsys):
    x = easy_images(200)
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, hidden=16, seed=0)
    for weight in model.decoder.likelihood.weights:  # the decoder's last layer: logits 0
        weight.assign(np.zeros(weight.shape))
    errors = reconstruction_errors(model, x, x.mean(axis=0))
    assert errors["grey"] and errors["reconstruction"] == pytest.approx(0.25)
    assert warned(model, x, x.mean(axis=0), capsys)


def test_a_trained_model_is_not_warned_of(capsys):
    x = easy_images(400)
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, hidden=32, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(x, batch_size=50, epochs=5, verbose=0)
    test = easy_images(100, seed=1)
    errors = reconstruction_errors(model, test, x.mean(axis=0))
    assert errors["reconstruction"] < 0.5 * errors["mean_image"]
    assert not warned(model, test, x.mean(axis=0), capsys)


def test_train_writes_the_warning_to_stderr_and_the_log(tmp_path, capsys, monkeypatch):
    from tfvae.training import train

    np.savez(tmp_path / "easy.npz", x_train=easy_images(100), x_test=easy_images(50, seed=1))
    monkeypatch.setattr(diagnostics, "GREY_RATIO", 0.0)  # any model is as grey as can be
    train(tmp_path / "run", model_config={"latent_dim": 2, "hidden": 8},
          data_config={"name": str(tmp_path / "easy.npz")}, epochs=1, batch_size=50,
          jit_compile=False, verbose=0)
    assert GREY in capsys.readouterr().err
    assert GREY in (tmp_path / "run" / "train.log").read_text()
