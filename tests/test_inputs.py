"""The Python API checks its inputs as the CLI does: the shapes MNIST loaders give are accepted,
bad values are refused with an error naming ``x`` before any step, in arrays and pipelines."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import VAE, Autoencoder, InputError, log_likelihood
from tfvae.evaluation.diagnostics import evaluate_elbo

GREY = (np.random.default_rng(0).random((32, 28, 28)) * 255).astype(np.uint8)


def _vae():
    model = VAE(latent_dim=2, hidden=8, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # steps change nothing: same loss each time
    return model


@pytest.mark.parametrize("shape", [(32, 28, 28), (32, 784), (32, 28, 28, 1)])
def test_fit_takes_the_shapes_mnist_loaders_give(shape):
    model, twin = _vae(), _vae()
    twin.set_weights(model.get_weights())
    twin.seed_generator.state.assign(model.seed_generator.state)
    loss = model.fit(GREY.reshape(shape), batch_size=32, epochs=1, verbose=0,
                     shuffle=False).history["loss"][0]
    # uint8 grey levels are scaled by 1/255, as tfvae.data reads them: the same loss as [0, 1].
    again = twin.fit(GREY[..., None] / 255.0, batch_size=32, epochs=1, verbose=0,
                     shuffle=False).history["loss"][0]
    assert loss == pytest.approx(again, rel=1e-5)
    assert 0 < loss < 784 * 2


@pytest.mark.parametrize("values, message", [
    (np.full((8, 28, 28), 255.0, np.float32), r"values in \[0, 1\]"),
    (np.full((8, 28, 28), np.nan, np.float32), "finite"),
])
def test_fit_refuses_bad_values_before_any_step(values, message):
    model = _vae()
    with pytest.raises(InputError, match=message) as info:
        model.fit(values, batch_size=8, epochs=1, verbose=0)
    assert info.value.argument == "x"
    assert int(model.optimizer.iterations.numpy()) == 0


def test_fit_refuses_a_shape_of_other_pixels():
    with pytest.raises(InputError, match=r"\(28, 28, 1\)") as info:
        _vae().fit(np.zeros((8, 28, 20), np.float32), epochs=1, verbose=0)
    assert info.value.argument == "x" and "(28, 20, 1)" in info.value.got


def test_a_pipeline_is_checked_batch_by_batch():
    model = _vae()
    flat = tf.data.Dataset.from_tensor_slices(GREY.reshape(32, 784) / 255.0).batch(16)
    history = model.fit(flat, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    bad = np.full((16, 28, 28, 1), 0.5, np.float32)
    bad[3, 4, 5] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="x: expected finite pixel values"):
        model.fit(tf.data.Dataset.from_tensor_slices(bad).batch(8), epochs=1, verbose=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"x: expected pixel values in \[0, 1\]"):
        model.evaluate(tf.data.Dataset.from_tensor_slices(np.full_like(bad, 3.0)).batch(8),
                       verbose=0)
    with pytest.raises(InputError, match="batches of shape"):
        model.fit(tf.data.Dataset.from_tensor_slices(np.zeros((8, 30), np.float32)).batch(4),
                  epochs=1, verbose=0)


def test_every_method_that_takes_images_takes_them_flat_and_names_x_otherwise():
    model = _vae()
    flat, images = GREY[:4].reshape(4, 784), GREY[:4, ..., None] / 255.0
    np.testing.assert_allclose(model.encode(flat).mean(), model.encode(images).mean(), atol=1e-6)
    np.testing.assert_allclose(model.reconstruct(flat), model.reconstruct(images), atol=1e-6)
    np.testing.assert_allclose(model.elbo(flat, seed=1), model.elbo(images, seed=1), atol=1e-4)
    np.testing.assert_allclose(model.predict(flat, verbose=0), model.reconstruct(images),
                               atol=1e-6)
    assert np.isfinite(evaluate_elbo(model, flat)["elbo"])
    assert np.isfinite(log_likelihood(model, flat, num_samples=10).mean)
    ae = Autoencoder(latent_dim=2, hidden=8, seed=0)
    np.testing.assert_allclose(ae.log_likelihood(flat), ae.log_likelihood(images), atol=1e-4)
    for call in (model.encode, model.reconstruct, model.elbo, ae.code, ae.log_likelihood,
                 lambda x: log_likelihood(model, x, num_samples=5),
                 lambda x: evaluate_elbo(model, x)):
        with pytest.raises(InputError) as info:
            call(np.zeros((2, 30), np.float32))
        assert info.value.argument in ("x", "data")


def test_train_takes_numpy_integers_for_counts_and_seeds(tmp_path):
    from tfvae.runs import RunDirectory
    from tfvae.training.pipeline import train

    model = train(tmp_path / "run", model_config={"latent_dim": np.int64(2), "hidden": np.int32(8)},
                  data_config={"name": "mnist", "train_examples": np.int64(200),
                               "test_examples": np.int16(100)},
                  epochs=np.int64(1), batch_size=np.int64(100), seed=np.uint8(3), verbose=0).model
    config = RunDirectory(tmp_path / "run").read_config()
    assert config["model"]["latent_dim"] == 2 and config["train"]["seed"] == 3
    assert model.latent_dim == 2
