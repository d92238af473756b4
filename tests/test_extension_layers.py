"""A likelihood and a network body added with one decorator each are members like the built-in
ones: a model of them trains, saves, reloads and exports, and the command offers them; an unknown
name is an InputError naming the argument and the registered names."""

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
import tensorflow_probability as tfp

import tfvae
import tfvae.cli
from tfvae.layers.bodies import BODIES, Body
from tfvae.layers.likelihoods import LIKELIHOODS, MIN_SCALE, Likelihood, positive_scale
from tfvae.models import VAE


# As docs/extending.md shows them (the Laplace here with a choice of scale).
@keras.saving.register_keras_serializable(package="tfvae_tests")
@LIKELIHOODS.register("laplace")
class LaplaceLikelihood(Likelihood):
    """p(x|z) = prod Laplace(loc, b): loc from the body; b from the body too ("network") or one
    free value per pixel ("learned")."""

    def __init__(self, event_shape, scale="learned", **kwargs):
        super().__init__(event_shape, **kwargs)
        self.scale = scale

    def build(self, input_shape):
        self.location = self._dense(input_shape, "loc")
        if self.scale == "network":
            self.raw_scale = self._dense(input_shape, "raw_scale")
        else:
            self.pixel_raw_scale = self.add_weight(name="pixel_raw_scale",
                                                   shape=self.event_shape, initializer="zeros")

    def call(self, h, batch_shape=None):
        loc = self._to_event(self.location(h), batch_shape)
        raw = (self._to_event(self.raw_scale(h), batch_shape) if self.scale == "network"
               else self.pixel_raw_scale)
        return tfp.distributions.Independent(
            tfp.distributions.Laplace(loc, positive_scale(raw)),
            reinterpreted_batch_ndims=len(self.event_shape))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="tfvae_tests")
@BODIES.register("residual")
class ResidualMLP(Body):
    """[N, ...] -> flatten -> h = Dense(hidden) -> h + Dense(Dense(h)) -> [N, hidden]."""

    def __init__(self, hidden=64, activation="tanh", **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.activation = hidden, activation
        self.flatten = keras.layers.Flatten()
        self.dense = [keras.layers.Dense(hidden, activation=activation, name=f"dense_{i}")
                      for i in range(3)]

    @classmethod
    def make(cls, part, image_shape, hidden, depth, activation, kernel_initializer):
        return cls(hidden, activation, name="body")

    def build(self, input_shape):
        shape = self.flatten.compute_output_shape(input_shape)
        for layer in self.dense:
            layer.build(shape)
            shape = (shape[0], self.hidden)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.hidden)

    def call(self, x):
        h = self.dense[0](self.flatten(x))
        return h + self.dense[2](self.dense[1](h))

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "activation": self.activation}


@pytest.mark.parametrize("scale", ["learned", "network"])
def test_the_laplace_log_prob_is_scipys(scale):
    rng = np.random.default_rng(0)
    head = LaplaceLikelihood((2, 3, 1), scale=scale)
    head.build((None, 4))
    h = rng.normal(size=(5, 4)).astype(np.float32)
    x = rng.normal(size=(5, 2, 3, 1)).astype(np.float32)
    if scale == "learned":
        head.pixel_raw_scale.assign(rng.normal(size=(2, 3, 1)))
        raw = head.pixel_raw_scale.numpy()
    else:
        raw = (h @ head.raw_scale.kernel.numpy() + head.raw_scale.bias.numpy()).reshape(x.shape)
    loc = (h @ head.location.kernel.numpy() + head.location.bias.numpy()).reshape(x.shape)
    b = np.log1p(np.exp(raw)) + MIN_SCALE
    expected = scipy.stats.laplace.logpdf(x, loc, b).reshape(5, -1).sum(axis=1)
    np.testing.assert_allclose(head(h).log_prob(x), expected, rtol=1e-5)


@pytest.mark.parametrize("settings", [{"likelihood": "laplace"}, {"architecture": "residual"}],
                         ids=["laplace", "residual"])
def test_a_registered_member_trains_saves_reloads_and_exports(settings, tmp_path):
    x = np.random.default_rng(0).uniform(size=(300, 28, 28, 1)).astype(np.float32)
    model = VAE(latent_dim=2, hidden=16, seed=0, **settings)
    model.compile(optimizer="adam")
    loss = model.fit(x, batch_size=100, epochs=1, verbose=0).history["loss"]
    assert np.isfinite(loss).all()

    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.decoder.likelihood) is type(model.decoder.likelihood)
    assert type(loaded.encoder.body) is type(model.encoder.body)
    np.testing.assert_array_equal(loaded.reconstruct(x[:5]), model.reconstruct(x[:5]))

    exported = tfvae.export.export_model(model, tmp_path / "export" / "1", num_samples=10)
    signatures = tf.saved_model.load(str(exported)).signatures
    out = signatures["reconstruct"](x=tf.constant(x[:5]))
    np.testing.assert_allclose(out["x_mean"], model.reconstruct(x[:5]), rtol=1e-5, atol=1e-6)
    bound = signatures["log_likelihood"](x=tf.constant(x[:5]), seed=tf.range(5, dtype=tf.int64))
    assert np.isfinite(bound["log_px"]).all() and np.isfinite(bound["elbo"]).all()


def test_a_flat_body_of_ones_own_takes_labels_after_the_pixels():
    model = VAE(latent_dim=2, hidden=8, architecture="residual", num_classes=3)
    assert not model.encoder.spatial
    assert model.encode(np.zeros((4, 28, 28, 1)), labels=[0, 1, 2, 0]).mean().shape == (4, 2)


@pytest.mark.parametrize("argument, registry", [("likelihood", LIKELIHOODS),
                                                ("architecture", BODIES)])
def test_an_unknown_name_names_the_argument_and_the_known_names(argument, registry):
    with pytest.raises(tfvae.InputError) as error:
        VAE(**{argument: "nope"})
    assert error.value.argument == argument and "'nope'" in str(error.value)
    assert {"laplace", "residual"} & set(registry.names())
    assert all(name in error.value.expected for name in registry.names())


def test_the_command_offers_the_registered_names(capsys):
    with pytest.raises(SystemExit):
        tfvae.cli.build_parser().parse_args(["train", "--help"])
    help_text = capsys.readouterr().out
    assert "laplace" in help_text and "residual" in help_text
