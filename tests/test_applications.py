"""Latent features, the linear probe, classifier_from_encoder, interpolation and augmentation."""

import json

import numpy as np
import pytest
from PIL import Image

from tfvae.cli import main
from tfvae import Autoencoder, InputError, classifier_from_encoder
from tfvae.data import load_dataset
from tfvae.applications.features import labelled_subset, latent_means, linear_probe, probe
from tfvae.applications.synthesis import augment, interpolate, latent_path, lerp, slerp
from tfvae.runs import load_run
from tfvae.training.pipeline import train


def cli(capsys, *args):
    """``tfvae ARGS`` in this process (TensorFlow is already loaded): (status, stdout, stderr)."""
    status = main([str(a) for a in args])
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.fixture(scope="module")
def vae(tiny_run):
    return load_run(tiny_run)[0]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist", binarize="none", train_examples=1000, test_examples=200)


@pytest.fixture(scope="module")
def autoencoder_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("ae") / "run"
    train(run, model="autoencoder", model_config={"latent_dim": 4, "hidden": 32},
          data_config={"name": "mnist", "train_examples": 200, "test_examples": 50},
          epochs=1, optimizer="adam", learning_rate=1e-3, verbose=0)
    return run


# -- features ---------------------------------------------------------------------------------


def test_features_cli_writes_the_latent_means_and_labels(tiny_run, vae, digits, tmp_path):
    out = tmp_path / "z.npz"
    assert main(["features", str(tiny_run), "--train-examples", "300", "--test-examples", "50",
                 "--out", str(out)]) == 0
    with np.load(out) as f:
        assert set(f.files) == {"z_train", "y_train", "z_test", "y_test"}
        assert f["z_train"].shape == (300, 4) and f["z_test"].shape == (50, 4)
        np.testing.assert_allclose(f["z_train"], vae.encode(digits.x_train[:300]).mean(),
                                   atol=1e-5)
        np.testing.assert_allclose(f["z_test"], vae.encode(digits.x_test[:50]).mean(), atol=1e-5)
        np.testing.assert_array_equal(f["y_test"], digits.y_test[:50])


def test_features_cli_rejects_a_dataset_of_another_shape(tiny_run, tmp_path, capsys):
    out = tmp_path / "z.npz"
    status, stdout, stderr = cli(capsys, "features", tiny_run, "--dataset", "frey_face",
                                  "--out", out)
    assert status == 2
    assert "--dataset" in stderr and "(28, 20, 1)" in stderr
    assert not out.exists()


def test_a_dataset_that_a_runs_setting_does_not_apply_to_is_refused_naming_it(
        tiny_run, tmp_path, capsys):
    import shutil

    from tfvae.runs import RunDirectory

    run = tmp_path / "binarized"
    shutil.copytree(tiny_run, run)
    config = RunDirectory(run).read_config()
    config["data"]["binarize"] = "dynamic"  # Frey Face's grey levels take no binarization
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match=r"^dataset: expected a dataset that the run's setting "
                       r"binarize='dynamic' applies to, got 'frey_face', which takes binarize"):
        RunDirectory(run).load_dataset("frey_face")
    status, _, stderr = cli(capsys, "evaluate", run, "--dataset", "frey_face")
    assert status == 2
    assert "--dataset: expected a dataset that the run's setting --binarize dynamic" in stderr


def test_latent_means_are_the_posterior_means_in_batches(vae, digits):
    z = latent_means(vae, digits.x_test, batch_size=7)
    np.testing.assert_allclose(z, vae.encode(digits.x_test).mean(), atol=1e-5)
    with pytest.raises(InputError, match="28, 28, 1"):
        latent_means(vae, np.zeros((3, 28, 20, 1)))


def test_labelled_subset_is_class_balanced_and_seeded():
    y = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 50))
    idx = labelled_subset(y, 100, seed=1)
    assert len(np.unique(idx)) == 100
    np.testing.assert_array_equal(np.bincount(y[idx]), np.full(10, 10))
    np.testing.assert_array_equal(idx, labelled_subset(y, 100, seed=1))
    assert not np.array_equal(idx, labelled_subset(y, 100, seed=2))
    assert sorted(np.bincount(y[labelled_subset(y, 25)])) == [2] * 5 + [3] * 5
    assert len(labelled_subset(y, None)) == 500
    with pytest.raises(InputError, match="^labels: expected"):
        labelled_subset(y, 5)


def test_linear_probe_separates_separable_classes_and_not_random_labels():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 20)) * 3
    y = rng.integers(0, 10, 1000)
    x = centres[y] + rng.normal(size=(1000, 20))
    assert linear_probe(x[:500], y[:500], x[500:], y[500:], steps=300) > 0.95
    # Labels shuffled in training carry nothing about x: test accuracy stays near chance (0.1).
    shuffled = rng.permutation(y[:500])
    assert linear_probe(x[:500], shuffled, x[500:], y[500:], steps=300) < 0.3


def test_probe_rows_on_the_tiny_run(vae, digits):
    (row,) = probe(vae, digits, labels=[100], steps=200)
    assert row["labels"] == 100
    # Ten classes: chance is 0.1; pixels alone give well above it even with 100 labels.
    assert 0.15 < row["z"] <= 1 and 0.5 < row["pixels"] <= 1


def test_probe_cli_prints_the_table(tiny_run, capsys):
    status, stdout, stderr = cli(capsys, "probe", tiny_run, "--labels", "100", "all", "--steps",
                                  "50", "--train-examples", 500, "--test-examples", 100)
    assert status == 0, stderr
    rows = [line.split() for line in stdout.splitlines()[-2:]]
    assert [r[0] for r in rows] == ["100", "500"]
    assert all(0.1 < float(v) <= 1 for r in rows for v in r[1:])


def test_probe_rejects_bad_label_counts(tiny_run, capsys):
    status, stdout, stderr = cli(capsys, "probe", tiny_run, "--labels", "ten")
    assert status == 2 and "--labels" in stderr and "'ten'" in stderr


# -- classifier_from_encoder ------------------------------------------------------------------


def test_classifier_from_encoder_starts_from_the_encoder_weights(vae, digits):
    before = [w.copy() for w in vae.get_weights()]
    classifier = classifier_from_encoder(vae, 10)
    body = classifier.get_layer("body")
    for copied, source in zip(body.get_weights(), vae.encoder.body.get_weights()):
        np.testing.assert_array_equal(copied, source)
    random = classifier_from_encoder(vae, 10, copy_weights=False)
    assert not np.allclose(random.get_layer("body").get_weights()[0],
                           vae.encoder.body.get_weights()[0])
    probs = classifier.predict(digits.x_test[:16], verbose=0)
    assert probs.shape == (16, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    # Training the classifier moves its copy of the body, never the VAE's.
    classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    classifier.fit(digits.x_train[:100], digits.y_train[:100], epochs=2, verbose=0)
    assert not np.allclose(body.get_weights()[0], before[0])
    for now, then in zip(vae.get_weights(), before):
        np.testing.assert_array_equal(now, then)


def test_classifier_from_encoder_takes_an_autoencoder_and_checks_arguments():
    ae = Autoencoder(latent_dim=2, hidden=8)
    classifier = classifier_from_encoder(ae, 3)
    np.testing.assert_array_equal(classifier.get_layer("body").get_weights()[0],
                                  ae.encoder.body.get_weights()[0])
    with pytest.raises(InputError, match="num_classes"):
        classifier_from_encoder(ae, 1)
    with pytest.raises(InputError, match="encoder.body"):
        classifier_from_encoder(object(), 10)


# -- interpolation ----------------------------------------------------------------------------


def test_linear_and_spherical_paths():
    z0, z1 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    t = np.linspace(0, 1, 5)
    for path in (lerp(z0, z1, t), slerp(z0, z1, t)):
        np.testing.assert_allclose(path[0], z0, atol=1e-6)
        np.testing.assert_allclose(path[-1], z1, atol=1e-6)
    # Between orthogonal unit vectors the great circle keeps norm 1; the chord dips to 1/sqrt(2).
    np.testing.assert_allclose(np.linalg.norm(slerp(z0, z1, t), axis=1), 1, atol=1e-6)
    assert np.linalg.norm(lerp(z0, z1, t)[2]) == pytest.approx(2 ** -0.5)
    np.testing.assert_allclose(slerp(z0, 2 * z0, t), lerp(z0, 2 * z0, t))  # parallel: linear
    with pytest.raises(InputError, match="^steps: expected"):
        latent_path(z0, z1, 1)
    with pytest.raises(InputError, match="^path: expected"):
        latent_path(z0, z1, 3, "cubic")


def test_interpolate_ends_at_the_reconstructions(vae, digits):
    x0, x1 = digits.x_test[0], digits.x_test[1]
    for path in ("linear", "spherical"):
        images = interpolate(vae, x0, x1, steps=6, path=path)
        assert images.shape == (6, 28, 28, 1)
        np.testing.assert_allclose(images[[0, -1]], vae.reconstruct(digits.x_test[:2]), atol=1e-5)
    z = vae.encode(digits.x_test[:2]).mean().numpy()
    middle = interpolate(vae, x0, x1, steps=3, path="linear")[1]
    np.testing.assert_allclose(middle, vae.decode(z.mean(axis=0, keepdims=True)).mean()[0],
                               atol=1e-5)


def test_interpolate_cli_writes_a_grid(tiny_run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    status, stdout, stderr = cli(capsys, "interpolate", tiny_run, "--from", 3, "--to", 9,
                                  "--steps", 5, "--out", out)
    assert status == 0, stderr
    with Image.open(out) as image:
        # Two rows (linear, spherical) of 5 + 2 images of 28 x 28, 1 px padding, scaled 2x.
        assert image.size == ((7 * 29 + 1) * 2, (2 * 29 + 1) * 2)


def test_interpolate_cli_rejects_an_index_out_of_range(tiny_run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    status, stdout, stderr = cli(capsys, "interpolate", tiny_run, "--from", 0, "--to", 10000,
                                  "--out", out)
    assert status == 2
    assert "--to" in stderr and "0 to 9999" in stderr and "10000" in stderr
    assert not out.exists()


# -- augmentation -----------------------------------------------------------------------------


def test_augment_samples_around_each_input(vae, digits):
    x, y = digits.x_test[:5], digits.y_test[:5]
    images, labels, source = augment(vae, x, y, per_example=4, temperature=0.0)
    assert images.shape == (20, 28, 28, 1)
    np.testing.assert_array_equal(source, np.repeat(np.arange(5), 4))
    np.testing.assert_array_equal(labels, np.repeat(y, 4))
    # Temperature 0 decodes the posterior mean: the reconstruction, four times over.
    np.testing.assert_allclose(images, np.repeat(vae.reconstruct(x), 4, axis=0), atol=1e-5)
    spread = {t: np.abs(augment(vae, x, per_example=8, temperature=t, seed=1)[0]
                        - np.repeat(vae.reconstruct(x), 8, axis=0)).mean() for t in (0.5, 2.0)}
    assert 0 < spread[0.5] < spread[2.0]
    again = augment(vae, x, per_example=8, temperature=0.5, seed=1)[0]
    np.testing.assert_array_equal(again, augment(vae, x, per_example=8, temperature=0.5, seed=1)[0])


def test_augment_checks_its_arguments(vae):
    x = np.zeros((2, 28, 28, 1), np.float32)
    with pytest.raises(InputError, match="^per_example: expected"):
        augment(vae, x, per_example=0)
    with pytest.raises(InputError, match="^temperature: expected"):
        augment(vae, x, temperature=-1.0)
    with pytest.raises(InputError, match="VAE"):
        augment(Autoencoder(latent_dim=2, hidden=8), x)


def test_augment_cli_carries_labels_over(tiny_run, digits, tmp_path):
    data, out = tmp_path / "data.npz", tmp_path / "augmented.npz"
    np.savez(data, x=(digits.x_test[:6, ..., 0] * 255).astype(np.uint8), y=digits.y_test[:6])
    assert main(["augment", str(tiny_run), "--input", str(data), "--per-example", "3",
                 "--temperature", "0.5", "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["x"].shape == (18, 28, 28, 1) and f["x"].dtype == np.float32
        np.testing.assert_array_equal(f["y"], np.repeat(digits.y_test[:6], 3))
        np.testing.assert_array_equal(f["source"], np.repeat(np.arange(6), 3))
        assert 0 <= f["x"].min() and f["x"].max() <= 1


def test_augment_cli_refuses_an_autoencoder_run(autoencoder_run, tmp_path, capsys):
    data, out = tmp_path / "data.npz", tmp_path / "augmented.npz"
    np.savez(data, x=np.zeros((2, 28, 28), np.uint8))
    status, stdout, stderr = cli(capsys, "augment", autoencoder_run, "--input", data,
                                  "--out", out)
    assert status == 2
    assert "RUN_DIR" in stderr and "'autoencoder'" in stderr
    assert not out.exists()
