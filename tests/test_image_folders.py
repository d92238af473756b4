"""A folder of colour photos of mixed sizes as a dataset: a convolutional VAE trained on it at
--image-size 64 64 with either likelihood, and the colour grids that sample and reconstruct write
from it."""

import json

import numpy as np
import pytest
from PIL import Image

from tfvae.cli import main
from tfvae.errors import InputError
from tfvae.runs import RunDirectory
from tfvae.training.pipeline import train

SIDE, PAD, SCALE = 64, 1, 2  # the image size asked for; tfvae.images' padding and enlargement


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """39 images of mixed sizes (every fifth grey, a few JPEG) and one corrupt PNG."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(39):
        h, w = (int(v) for v in rng.integers(40, 100, 2))
        ramp = np.linspace(0, 1, w)[None, :, None] * rng.random(3)  # a colour gradient
        pixels = np.clip(ramp + 0.2 * rng.random((h, w, 3)), 0, 1)
        image = Image.fromarray((pixels * 255).astype(np.uint8))
        image = image.convert("L") if i % 5 == 0 else image
        image.save(folder / f"{i:02d}.{'jpg' if i % 7 == 3 else 'png'}", quality=95)
    (folder / "39.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    return folder


def cells(png, rows, columns):
    """The images of a grid written by tfvae.images.save_grid, as uint8 [rows, columns, H, W, C]."""
    pixels = png[::SCALE, ::SCALE]
    step = SIDE + PAD
    return np.stack([np.stack([pixels[PAD + r * step:PAD + r * step + SIDE,
                                      PAD + c * step:PAD + c * step + SIDE]
                               for c in range(columns)]) for r in range(rows)])


def read_png(path, rows, columns):
    image = Image.open(path)
    assert image.mode == "RGB"
    shape = (SCALE * (rows * (SIDE + PAD) + PAD), SCALE * (columns * (SIDE + PAD) + PAD), 3)
    png = np.asarray(image)
    assert png.shape == shape
    return cells(png, rows, columns)


def as_levels(images):
    return np.round(np.clip(images, 0, 1) * 255)


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_conv_vae_trains_on_a_colour_folder_and_writes_colour_grids(photos, tmp_path, capsys,
                                                                   likelihood):
    run_dir = tmp_path / "run"
    code = main(["train", "--out", run_dir, "--dataset", photos, "--image-size", SIDE, SIDE,
                 "--architecture", "conv", "--likelihood", likelihood, "--epochs", 1,
                 "--batch-size", 12, "--latent-dim", 4, "--hidden", 32, "--optimizer", "adam",
                 "--learning-rate", "1e-3", "--quiet"])
    assert code == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    # One epoch of a tiny model: its pictures are still the mean image's grey, and it says so.
    assert len(warnings) == 2 and "39.png" in warnings[0] and "1 of 40" in warnings[0]
    assert "same grey picture" in warnings[1]

    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["image_size"] == [SIDE, SIDE]
    assert config["model"]["image_shape"] == [SIDE, SIDE, 3]
    assert config["model"]["likelihood"] == likelihood
    assert config["model"]["architecture"] == "conv"
    (row,) = RunDirectory(run_dir).read_metrics()
    assert np.isfinite(row["test_elbo"]) and np.isfinite(row["train_elbo"])

    model = RunDirectory(run_dir).load_model()
    assert model.likelihood_name == likelihood

    # sample: 6 images in a grid of 2 rows of 3, each the model's mean of p(x|z) for its seed.
    assert main(["sample", run_dir, "--num", 6, "--seed", 3, "--out", tmp_path / "s.png"]) == 0
    grid = read_png(tmp_path / "s.png", rows=2, columns=3).reshape(6, SIDE, SIDE, 3)
    expected = model.sample(6, seed=3).numpy()
    assert expected.shape == (6, SIDE, SIDE, 3)
    assert np.abs(expected[..., 0] - expected[..., 1]).max() > 1e-3  # not grey
    np.testing.assert_allclose(grid, as_levels(expected), atol=1)

    # reconstruct: the run's 3 test images (39 read, the last tenth) over their reconstructions.
    assert main(["reconstruct", run_dir, "--num", 8, "--out", tmp_path / "r.png"]) == 0
    grid = read_png(tmp_path / "r.png", rows=2, columns=3)
    x_test = RunDirectory(run_dir).load_dataset(test_examples=8).x_test
    assert x_test.shape == (3, SIDE, SIDE, 3)
    np.testing.assert_allclose(grid[0], as_levels(x_test), atol=1)
    np.testing.assert_allclose(grid[1], as_levels(model.reconstruct(x_test).numpy()), atol=1)

    # evaluate reads the run's dataset at the run's size; --resume refuses another size.
    capsys.readouterr()
    assert main(["evaluate", run_dir]) == 0
    assert "test elbo" in capsys.readouterr().out
    assert main(["train", "--out", run_dir, "--resume", "--image-size", 32, 32]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("tfvae train: error: --image-size: expected [64, 64] as the run")


def test_python_api_checks_image_size_before_writing(photos, tmp_path):
    run_dir = tmp_path / "run"
    bad = [({"image_size": (0, 64)}, {}), ({"image_size": [64]}, {}),
           ({"image_size": (30, 64)}, {"architecture": "conv"})]
    for data_config, model_config in bad:
        with pytest.raises(InputError) as err:
            train(run_dir, model_config=model_config, data_config={"name": str(photos),
                                                                   **data_config}, verbose=0)
        assert err.value.argument == "image_size" and str(err.value).startswith("image_size")
    with pytest.raises(InputError, match="image_size='H W'") as err:
        train(run_dir, data_config={"name": str(photos)}, verbose=0)
    assert str(err.value).startswith(f"name={str(photos)!r}: ")
    assert not run_dir.exists()
