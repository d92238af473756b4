"""The residual convolutional body ("resnet"): its shapes for grey and colour images of several
sizes, a model of it trains, saves and reloads to the same outputs, and an image size it cannot
halve is refused naming the argument; the bodies' GELU is the exact one, with the exact
derivative."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

import tfvae
from tfvae.layers.activations import activation_function
from tfvae.layers.bodies import network_body
from tfvae.layers.resnet import ResNetDecoderBody, ResNetEncoderBody, Upsampling
from tfvae.models import VAE


def test_upsampling_is_keras_nearest_neighbour_and_its_gradient_sums_each_block():
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 4, 5, 2)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = Upsampling()(x)
        weights = tf.reshape(tf.range(tf.size(y), dtype=tf.float32), y.shape)
        loss = tf.reduce_sum(weights * y)
    np.testing.assert_array_equal(y, keras.layers.UpSampling2D(2)(x))
    # d loss / d x[i, j] is the sum of the weights over the 2x2 block that copies it.
    blocks = tf.reshape(weights, [3, 4, 2, 5, 2, 2])
    np.testing.assert_allclose(tape.gradient(loss, x), tf.reduce_sum(blocks, axis=[2, 4]))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gelu_and_its_derivative_are_the_normal_cdfs(dtype):
    x = np.linspace(-6, 6, 241)
    inputs = tf.constant(x, dtype)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        values = activation_function("gelu")(inputs)
    slopes = tape.gradient(values, inputs)
    x = inputs.numpy().astype(np.float64)  # the points as rounded to dtype
    # d/dx x Phi(x) = Phi(x) + x phi(x)
    tolerance = 1e-6 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(np.float64(values), x * stats.norm.cdf(x), atol=tolerance)
    np.testing.assert_allclose(np.float64(slopes), stats.norm.cdf(x) + x * stats.norm.pdf(x),
                               atol=tolerance)
    assert activation_function("relu") is keras.activations.get("relu")


@pytest.mark.parametrize("image_shape", [(28, 28, 1), (32, 32, 3), (64, 64, 3)])
def test_the_bodies_shapes(image_shape):
    encoder = network_body("encoder", "resnet", image_shape, 8, 2, "gelu", "he_uniform")
    decoder = network_body("decoder", "resnet", image_shape, 8, 2, "gelu", "he_uniform")
    assert type(encoder) is ResNetEncoderBody and type(decoder) is ResNetDecoderBody
    x = np.random.default_rng(0).uniform(size=(2, *image_shape)).astype(np.float32)
    h = encoder(x)
    assert h.shape == (2, image_shape[0] // 4 * image_shape[1] // 4 * 8)
    assert encoder.compute_output_shape((None, *image_shape)) == (None, h.shape[1])
    features = decoder(np.zeros((2, 5), np.float32))
    assert features.shape == (2, *image_shape[:2], 8)
    # 3 resolutions of 2 blocks, each block 4 convolutions of a kernel and a bias.
    assert sum("block_" in w.path for w in encoder.weights) == 3 * 2 * 4 * 2


@pytest.mark.parametrize("likelihood", ["bernoulli", "discretized_logistic"])
def test_a_model_trains_saves_and_reloads(likelihood, tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, size=(32, 16, 16, 3)) / 255).astype(np.float32)
    model = VAE(image_shape=(16, 16, 3), latent_dim=4, hidden=8, depth=1, activation="gelu",
                architecture="resnet", likelihood=likelihood, seed=0)
    model.compile(optimizer="adam")
    loss = model.fit(x, batch_size=16, epochs=2, verbose=0).history["loss"]
    assert np.isfinite(loss).all()
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.encoder.body) is ResNetEncoderBody
    np.testing.assert_array_equal(loaded.reconstruct(x[:4]), model.reconstruct(x[:4]))


def test_a_conditional_model_takes_labels_as_channels():
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, hidden=4, architecture="resnet",
                num_classes=3)
    assert model.encode(np.zeros((3, 8, 8, 1)), labels=[0, 1, 2]).mean().shape == (3, 2)


@pytest.mark.parametrize("image_shape", [(30, 30, 1), (32, 18, 3)])
def test_an_image_size_it_cannot_halve_twice_is_refused(image_shape):
    with pytest.raises(tfvae.InputError, match="divisible by 4") as error:
        VAE(image_shape=image_shape, architecture="resnet", hidden=8)
    assert error.value.argument == "architecture 'resnet'"


def test_train_refuses_an_image_size_it_cannot_halve_before_reading(tmp_path):
    from tfvae.training import train

    with pytest.raises(tfvae.InputError) as error:
        train(tmp_path / "run", model_config={"architecture": "resnet"},
              data_config={"image_size": (30, 32)})
    assert error.value.argument == "image_size" and "divisible by 4" in error.value.expected
    assert not (tmp_path / "run").exists()
