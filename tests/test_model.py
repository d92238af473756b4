"""tfvae.VAE: construction, the public methods, learning, and save/load."""

import keras
import numpy as np
import pytest

from tfvae import VAE, InputError
from tfvae.data import load_dataset, make_pipeline


@pytest.fixture(scope="module")
def mnist_small():
    return load_dataset("mnist", binarize="static", train_examples=3000, test_examples=500)


def test_training_raises_the_test_elbo_by_a_clear_margin(mnist_small):
    model = VAE(latent_dim=10, hidden=200, activation="relu", seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    test = make_pipeline(mnist_small.x_test, batch_size=250)
    before = model.evaluate(test, return_dict=True, verbose=0)["elbo"]
    train = make_pipeline(mnist_small.x_train, batch_size=100, shuffle=True)
    model.fit(train, epochs=10, verbose=0, shuffle=False)  # 300 steps; the pipeline shuffles
    after = model.evaluate(test, return_dict=True, verbose=0)
    assert before < -500  # an untrained decoder: about 784 * log 2
    assert after["elbo"] > -200 and after["elbo"] > before + 300
    assert after["elbo"] == pytest.approx(after["reconstruction"] - after["kl"], abs=1e-3)
    assert after["kl"] > 0


def test_methods_shapes_and_seeded_sampling():
    model = VAE(image_shape=(28, 20, 1), latent_dim=2, hidden=32, likelihood="gaussian", seed=1)
    x = np.random.default_rng(0).uniform(size=(5, 28, 20, 1)).astype(np.float32)
    q = model.encode(x)
    assert q.batch_shape == (5,) and q.event_shape == (2,)
    assert model.decode(q.sample(3, seed=[1, 2])).batch_shape == (3, 5)
    assert model.reconstruct(x).shape == (5, 28, 20, 1)
    np.testing.assert_array_equal(model.sample(4, seed=7), model.sample(4, seed=7))
    assert not np.allclose(model.sample(4, seed=7), model.sample(4, seed=8))


@pytest.mark.parametrize("options", [
    {"kl": "sampled", "num_samples": 3},
    {"objective": "iwae", "num_samples": 5},
    {"architecture": "conv", "hidden": 32},
    {"depth": 2, "activation": "relu", "weight_decay": 1e-3},
])
def test_every_option_trains_and_round_trips_through_save(tmp_path, options):
    model = VAE(latent_dim=3, **{"hidden": 16, **options}, seed=0)
    model.compile(optimizer="adam")
    x = (np.random.default_rng(1).uniform(size=(64, 28, 28, 1)) > 0.5).astype(np.float32)
    history = model.fit(x, batch_size=32, epochs=2, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.reconstruct(x[:4]), model.reconstruct(x[:4]))
    np.testing.assert_array_equal(loaded.sample(3, seed=5), model.sample(3, seed=5))
    np.testing.assert_array_equal(loaded.elbo(x[:4], seed=[1, 2]), model.elbo(x[:4], seed=[1, 2]))
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 4


@pytest.mark.parametrize("kwargs, argument", [
    ({"latent_dim": 0}, "latent_dim"),
    ({"num_samples": 0}, "num_samples"),
    ({"kl": "exact"}, "kl"),
    ({"objective": "vi"}, "objective"),
    ({"likelihood": "student_t"}, "likelihood"),
    ({"architecture": "rnn"}, "architecture"),
    ({"hidden": 0}, "hidden"),
    ({"image_shape": (28, -1)}, "image_shape"),
    ({"architecture": "conv", "image_shape": (27, 27, 1)}, "architecture 'conv'"),
])
def test_bad_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(InputError) as error:
        VAE(**kwargs)
    assert str(error.value).startswith(f"{argument}: expected")
