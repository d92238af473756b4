"""The model base class and registry: every model shares its settings, its config and its saving;
a new model is a subclass and a registration; models saved by earlier versions still load."""

import inspect
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import InputError, estimators
from tfvae.data import make_pipeline
from tfvae.export import export_model
from tfvae.export.signatures import model_signatures
from tfvae.models import MODELS, VAE, Autoencoder, LatentVariableModel, load_model, model_class
from tfvae.models import register

tfd = tfp.distributions
LEGACY = Path(__file__).parent / "data" / "legacy"
SMALL = {"latent_dim": 2, "hidden": 8, "seed": 0}


@register("student_t_vae")
class StudentTVAE(VAE):
    """The README's example: a VAE whose prior is a product of Student-t distributions."""

    @property
    def prior(self):
        return tfd.Independent(tfd.StudentT(df=3.0, loc=tf.zeros([self.latent_dim]), scale=1.0),
                               reinterpreted_batch_ndims=1)


def _binary(n, seed=0):
    return (np.random.default_rng(seed).random((n, 28, 28, 1)) < 0.3).astype(np.float32)


def _instance(name):
    cls = model_class(name)
    return cls(40, **SMALL) if cls.needs_example_index else cls(**SMALL)


def test_the_registry_names_every_model_and_refuses_others():
    assert {"vae", "autoencoder", "wake_sleep", "mcem", "student_t_vae"} <= set(MODELS)
    for name, cls in MODELS.items():
        assert issubclass(cls, LatentVariableModel) and cls.registry_name == name
    with pytest.raises(InputError) as info:
        model_class("gan")
    assert info.value.argument == "model" and "vae" in info.value.expected


@pytest.mark.parametrize("name", ["vae", "autoencoder", "wake_sleep", "mcem"])
def test_get_config_mirrors_the_constructor(name):
    model = _instance(name)
    config = model.get_config()
    parameters = {
        p for cls in type(model).__mro__ if issubclass(cls, LatentVariableModel)
        for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")}
    assert parameters <= set(config), parameters - set(config)
    again = type(model).from_config(config)
    assert again.get_config() == config
    assert [v.shape for v in again.weights] == [v.shape for v in model.weights]


def test_every_model_has_the_shared_settings_prior_and_seeded_sampling():
    for name in ("vae", "autoencoder", "wake_sleep", "mcem"):
        model = _instance(name)
        assert model.image_shape == (28, 28, 1) and model.latent_dim == 2
        assert model.prior.event_shape == [2]
        np.testing.assert_array_equal(model.sample(3, seed=5), model.sample(3, seed=5))
        assert model.sample(3, seed=5).shape == (3, 28, 28, 1)


def test_counts_and_seeds_accept_numpy_integers():
    model = VAE(latent_dim=np.int64(3), hidden=np.int32(8), num_samples=np.int16(2),
                seed=np.uint8(1))
    assert (model.latent_dim, model.hidden, model.num_samples, model.seed) == (3, 8, 2, 1)
    assert model.sample(np.int64(2), seed=np.int64(4)).shape == (2, 28, 28, 1)
    with pytest.raises(InputError, match="latent_dim"):
        VAE(latent_dim=True)
    with pytest.raises(InputError, match="latent_dim"):
        VAE(latent_dim=2.0)


def test_a_model_without_an_encoder_says_so():
    mcem = _instance("mcem")
    with pytest.raises(InputError, match="encoder"):
        mcem.encode(_binary(2))


def test_a_new_model_trains_saves_reloads_and_exports(tmp_path):
    keras.utils.set_random_seed(0)
    model = StudentTVAE(kl="sampled", **SMALL)
    x = _binary(64)
    # Its bound uses its own prior: estimator A with log p(z) of the Student-t.
    q = model.encode(x[:4])
    terms = model.bound_terms(x[:4], seed=3)
    z = estimators.sample_posterior(q, 1, tf.constant([3, 0], tf.int32))
    expected_kl = -(model.prior.log_prob(z) - q.log_prob(z))[0]
    np.testing.assert_allclose(terms["kl"], expected_kl, rtol=1e-5)

    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(make_pipeline(x, batch_size=16), epochs=3, verbose=0).history
    assert history["elbo"][-1] > history["elbo"][0]

    model.save(tmp_path / "student.keras")
    again = load_model(tmp_path / "student.keras")
    assert type(again) is StudentTVAE
    np.testing.assert_allclose(again.reconstruct(x[:4]), model.reconstruct(x[:4]), atol=1e-6)
    np.testing.assert_allclose(again.sample(2, seed=1), model.sample(2, seed=1), atol=1e-6)

    path = export_model(again, tmp_path / "export" / "1", num_samples=500)
    loaded = tf.saved_model.load(str(path))
    assert set(model_signatures(again)) <= set(loaded.signatures)
    out = loaded.signatures["log_likelihood"](x=tf.constant(x[:8]),
                                              seed=tf.constant(np.arange(8), tf.int64))
    # The importance-sampled log p(x) with the model's own prior lies above its ELBO (the mean
    # of many single-sample bounds): Jensen's inequality, up to the estimates' noise.
    elbo = np.mean([again.elbo(x[:8], seed=s).numpy() for s in range(100)])
    assert np.mean(out["log_px"].numpy()) > elbo - 0.5
    sample = loaded.signatures["sample"](seed=tf.constant([7], tf.int64))
    assert sample["x_mean"].shape == (1, 28, 28, 1)


def test_the_autoencoder_exports_the_signatures_it_has(tmp_path):
    model = Autoencoder(**SMALL)
    assert model_signatures(model) == ("encode", "decode", "sample", "reconstruct")
    loaded = tf.saved_model.load(str(export_model(model, tmp_path / "ae" / "1")))
    assert "log_likelihood" not in loaded.signatures
    x = _binary(3)
    out = loaded.signatures["reconstruct"](x=tf.constant(x))
    np.testing.assert_allclose(out["x_mean"], model.reconstruct(x), atol=1e-6)
    np.testing.assert_array_equal(loaded.signatures["encode"](x=tf.constant(x))["z_stddev"], 0)


@pytest.mark.parametrize("name", ["vae", "autoencoder", "wake_sleep"])
def test_models_saved_by_earlier_versions_load_with_the_same_outputs(name):
    model = load_model(LEGACY / f"{name}.keras")
    assert type(model).registry_name == name
    x = np.load(LEGACY / "x.npy")[:4]
    np.testing.assert_allclose(model.reconstruct(x), np.load(LEGACY / f"{name}_recon.npy"),
                               atol=1e-6)


def test_an_mcem_model_saved_by_an_earlier_version_loads_with_its_chains():
    model = load_model(LEGACY / "mcem.keras")
    assert model.latents.shape == (40, 2) and model.num_train == 40
    z = np.zeros((1, 2), np.float32)
    np.testing.assert_allclose(model.decode(z).mean(), np.load(LEGACY / "mcem_decode.npy"),
                               atol=1e-6)


def test_log_mean_exp_is_the_log_of_the_mean_of_the_weights():
    log_w = np.random.default_rng(0).normal(size=(50, 3)) * 30  # would overflow exp in float32
    expected = np.log(np.mean(np.exp(log_w.astype(np.float64) - 40), axis=0)) + 40
    np.testing.assert_allclose(estimators.log_mean_exp(tf.constant(log_w, tf.float32)),
                               expected, rtol=1e-5)
    # Chunks' log-sum-exps combine into the whole's log-mean-exp.
    chunks = tf.stack([tf.reduce_logsumexp(tf.constant(log_w[i:i + 10], tf.float32), axis=0)
                       for i in range(0, 50, 10)])
    np.testing.assert_allclose(estimators.log_mean_exp(chunks, count=50), expected, rtol=1e-5)


def test_log_joint_is_the_prior_plus_the_likelihood():
    model = VAE(**SMALL)
    x = _binary(4)
    z = tf.random.stateless_normal([3, 4, 2], seed=[1, 2])
    expected = model.prior.log_prob(z) + model.decode(z).log_prob(x)
    np.testing.assert_allclose(estimators.log_joint(model.decode, model.prior, x, z), expected)
