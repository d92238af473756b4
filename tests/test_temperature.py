"""Draws of z at a temperature (``prior_draws``, ``sample``, ``tfvae sample --temperature``): the
standard normal noise scaled, so that 0 leaves each prior at its mean and the scale of a normal
prior's draws is the temperature; a bad temperature is refused naming it."""

import numpy as np
import pytest
from PIL import Image

from tfvae.cli import main
from tfvae.errors import InputError
from tfvae.images import grid
from tfvae.models import VAE
from tfvae.runs import RunDirectory


def test_a_normal_priors_draws_have_the_temperature_as_their_scale():
    model = VAE(image_shape=(4, 4, 1), latent_dim=3, hidden=8, seed=0)
    z = model.prior_draws(20_000, seed=3).numpy()
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=0.03)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=0.02)
    # One seed, one noise: a lower temperature shrinks the same draws toward the mean.
    np.testing.assert_allclose(model.prior_draws(20_000, seed=3, temperature=0.5), z / 2,
                               rtol=1e-6)
    cold = model.sample(3, seed=3, temperature=0).numpy()
    np.testing.assert_allclose(cold, np.repeat(model.decode(np.zeros((1, 3), np.float32))
                                               .mean().numpy(), 3, axis=0), atol=1e-6)


def test_a_mixture_prior_at_temperature_zero_draws_its_components_means():
    model = VAE(image_shape=(4, 4, 1), latent_dim=2, hidden=8, prior="mog", prior_components=3,
                seed=0)
    means = model.prior.components_distribution.mean().numpy()  # [3, 2]
    z = model.prior_draws(60, seed=1, temperature=0).numpy()
    nearest = np.abs(z[:, None] - means[None]).max(axis=-1).min(axis=-1)
    np.testing.assert_allclose(nearest, 0, atol=1e-6)


def test_a_hierarchy_at_temperature_zero_is_its_priors_mean_group_by_group():
    model = VAE(image_shape=(8, 8, 1), architecture="resnet", latent_groups=3, latent_dim=2,
                hidden=8, activation="gelu", seed=0)
    mean = model.prior.mean().numpy()  # each group's mean given the means of the groups above
    np.testing.assert_allclose(model.prior_draws(2, seed=4, temperature=0), [mean, mean],
                               atol=1e-5)
    warm, cool = (model.prior_draws(2, seed=4, temperature=t).numpy() for t in (1, 0.5))
    # The top group's prior is N(0, I) in every hierarchy: there, draws scale exactly.
    top = model.decoder.body.sizes[0]
    np.testing.assert_allclose(cool[:, :top], warm[:, :top] / 2, rtol=1e-5)
    assert not np.allclose(cool, warm)


@pytest.mark.parametrize("temperature", [-1, float("nan"), "warm"])
def test_a_bad_temperature_is_refused_naming_it(temperature):
    model = VAE(image_shape=(4, 4, 1), latent_dim=2, hidden=8, seed=0)
    with pytest.raises(InputError, match="^temperature:"):
        model.sample(2, temperature=temperature)


@pytest.mark.parametrize("num", [0, -3, 2.5, 10 ** 12])
def test_a_bad_number_of_draws_is_refused_naming_it(num):
    model = VAE(image_shape=(4, 4, 1), latent_dim=2, hidden=8, seed=0)
    with pytest.raises(InputError, match="^num:"):
        model.prior_draws(num)


def test_the_command_draws_at_the_temperature_given(tiny_run, tmp_path, capsys):
    out = tmp_path / "cold.png"
    assert main(["sample", str(tiny_run), "--num", "4", "--temperature", "0",
                 "--out", str(out)]) == 0
    assert "4 samples at temperature 0 written to" in capsys.readouterr().out
    # No noise: the decoded mean at z = 0, four times.
    model = RunDirectory(tiny_run).load_model("model")
    at_zero = model.decode(np.zeros((1, model.latent_dim), np.float32)).mean().numpy()
    expected = grid(np.repeat(at_zero, 4, axis=0)).repeat(2, axis=0).repeat(2, axis=1)
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected[..., 0])  # grey
    assert main(["sample", str(tiny_run), "--num", "4", "--temperature", "-0.5",
                 "--out", str(tmp_path / "bad.png")]) == 2
    assert capsys.readouterr().err.startswith("tfvae sample: error: --temperature:")
