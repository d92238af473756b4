"""TensorBoard: each epoch's images and KL histogram, and the Embedding Projector, read back with
TensorBoard's own readers and its projector plugin."""

import io
import json
import math

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins import projector

from tfvae import images
from tfvae.training import summaries
from tfvae import projector as tfvae_projector
from tfvae.cli import main
from tfvae.data import load_dataset
from tfvae.applications.features import latent_means
from tfvae.models import MCEM
from tfvae.runs import RunDirectory

EPOCHS = 2


def cli(capsys, *args):
    """``tfvae ARGS`` in this process (TensorFlow is already loaded): (status, stdout, stderr)."""
    status = main([str(a) for a in args])
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.fixture(scope="module")
def run2d(tmp_path_factory):
    """A VAE with a 2-D latent space trained by `tfvae train --projector`."""
    run = tmp_path_factory.mktemp("tb") / "run"
    status = main(["train", "--out", str(run), "--latent-dim", "2", "--hidden", "32",
                   "--train-examples", "300", "--test-examples", "100", "--epochs", str(EPOCHS),
                   "--batch-size", "100", "--optimizer", "adam", "--learning-rate", "1e-3",
                   "--quiet", "--projector"])
    assert status == 0
    return RunDirectory(run)


def events(directory):
    acc = ea.EventAccumulator(str(directory), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    return acc


def decoded(event):
    """The PNG of an image summary's event as a uint8 array [H, W]."""
    width, height, png = tf.make_ndarray(event.tensor_proto)
    pixels = np.asarray(Image.open(io.BytesIO(png)))
    assert pixels.shape[:2] == (int(height), int(width))
    return pixels


def side(count, size=28, padding=1):
    return count * (size + padding) + padding


# -- each epoch's summaries ------------------------------------------------------------------


def test_each_epoch_writes_images_of_the_model_and_the_kl_histogram(run2d):
    train, validation = events(run2d.tensorboard_dir / "train"), events(run2d.tensorboard_dir /
                                                                         "validation")
    assert {"samples", "manifold", "epoch_elbo"} <= set(train.Tags()["tensors"])
    assert {"reconstructions", "kl_per_dimension", "epoch_elbo"} <= set(
        validation.Tags()["tensors"])
    for acc, tag in ((train, "samples"), (train, "manifold"), (validation, "reconstructions"),
                     (validation, "kl_per_dimension")):
        assert [e.step for e in acc.Tensors(tag)] == list(range(EPOCHS)), tag
        plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
        assert plugin == ("histograms" if tag == "kl_per_dimension" else "images"), tag

    samples = [decoded(e) for e in train.Tensors("samples")]
    assert samples[0].shape == (side(8), side(8))  # 64 samples, 8 x 8
    assert not np.array_equal(samples[0], samples[1])  # the model changed between epochs
    # The last step shows the final model: its samples of the fixed seed, its manifold.
    model = run2d.load_model()
    np.testing.assert_allclose(
        samples[-1], images.grid(images.sample_images(model, 64, seed=0))[..., 0], atol=1)
    manifold = decoded(train.Tensors("manifold")[-1])
    assert manifold.shape == (side(20), side(20))
    np.testing.assert_allclose(manifold, images.grid(images.manifold_images(model, 20), 20)[..., 0],
                               atol=1)

    # Reconstructions: the run's first 8 test images (binarized once) above their reconstructions.
    x = run2d.load_dataset().x_test[:8]
    recon = decoded(validation.Tensors("reconstructions")[-1])
    assert recon.shape == (side(2), side(8))
    np.testing.assert_array_equal(recon[1:29, 1:29], (x[0, ..., 0] * 255).astype(np.uint8))
    np.testing.assert_allclose(recon, images.grid(images.reconstruction_grid(model, x), 8)[..., 0],
                               atol=1)

    # The histogram holds the KL of each latent dimension that metrics.csv records.
    buckets = tf.make_ndarray(validation.Tensors("kl_per_dimension")[-1].tensor_proto)
    kl = run2d.read_metrics()[-1]["kl_per_dimension"]
    assert buckets[:, 2].sum() == len(kl) == 2
    assert buckets[0, 0] == pytest.approx(min(kl), abs=1e-4)
    assert buckets[-1, 1] == pytest.approx(max(kl), abs=1e-4)


def test_a_model_without_an_encoder_gets_samples_and_no_reconstructions(tmp_path):
    model = MCEM(num_train=10, image_shape=(28, 28, 1), latent_dim=3, hidden=8, seed=0)
    callback = summaries.EpochSummaries(tmp_path, test_images=np.zeros((8, 28, 28, 1)))
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_end(0, {"loss": 1.0})
    callback.on_train_end()
    train, validation = events(tmp_path / "train"), events(tmp_path / "validation")
    assert set(train.Tags()["tensors"]) == {"epoch_loss", "samples"}  # no manifold: 3-D z
    assert validation.Tags()["tensors"] == []
    assert decoded(train.Tensors("samples")[0]).shape == (side(8), side(8))


def test_a_diverged_epoch_writes_no_images(tmp_path, run2d):
    callback = summaries.EpochSummaries(tmp_path)
    callback.set_model(run2d.load_model())
    callback.on_train_begin()
    callback.on_epoch_end(0, {"loss": float("nan")})
    callback.on_train_end()
    assert events(tmp_path / "train").Tags()["tensors"] == ["epoch_loss"]


# -- the Embedding Projector -----------------------------------------------------------------


def read_projector(directory):
    config = text_format.Parse((directory / tfvae_projector.CONFIG).read_text(),
                               projector.ProjectorConfig())
    (embedding,) = config.embeddings
    return embedding


def served(logdir):
    """The projector plugin over ``logdir``, as `tensorboard --logdir` runs it."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin
    from werkzeug.test import Client

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    plugin = ProjectorPlugin(base_plugin.TBContext(
        logdir=str(logdir), data_provider=data_provider.MultiplexerDataProvider(mux, str(logdir))))
    apps = plugin.get_plugin_apps()
    return lambda route, **query: Client(apps[route]).get(route, query_string=query)


def test_train_projector_holds_the_test_sets_latent_means_labels_and_images(run2d):
    assert run2d.read_config()["train"]["projector"] is True
    directory = run2d.projector_dir
    embedding = read_projector(directory)
    assert embedding.tensor_path == "latent_means.tsv" and embedding.metadata_path == "metadata.tsv"
    assert list(embedding.sprite.single_image_dim) == [28, 28]

    # The run's 100 test images in grey levels, as `tfvae features` reads them.
    model = run2d.load_model()
    data = run2d.load_dataset(binarize="none")
    means = np.loadtxt(directory / embedding.tensor_path, delimiter="\t")
    assert means.shape == (len(data.x_test), 2) == (100, 2)
    assert list(embedding.tensor_shape) == [100, 2]
    np.testing.assert_allclose(means, latent_means(model, data.x_test), atol=1e-5)

    rows = (directory / embedding.metadata_path).read_text().splitlines()
    assert rows[0] == "index\tlabel"
    assert [row.split("\t") for row in rows[1:]] == [[str(i), str(y)]
                                                    for i, y in enumerate(data.y_test)]

    sprite = np.asarray(Image.open(directory / embedding.sprite.image_path))
    assert sprite.shape == (280, 280)  # 100 images, 10 x 10, no padding
    np.testing.assert_array_equal(sprite[28:56, 28 * 3:28 * 4],
                                  np.round(data.x_test[13, ..., 0] * 255).astype(np.uint8))

    # TensorBoard's projector plugin finds it from the run's tensorboard/ and serves the tensor.
    get = served(run2d.tensorboard_dir)
    assert json.loads(get("/runs").data) == ["projector"]
    tensor = get("/tensor", run="projector", name="latent_means").data
    np.testing.assert_allclose(np.frombuffer(tensor, np.float32).reshape(100, 2), means,
                               atol=1e-6)
    assert get("/sprite_image", run="projector", name="latent_means").status_code == 200


def test_features_tensorboard_writes_a_projector_and_refuses_to_clobber(run2d, tmp_path, capsys):
    out = tmp_path / "proj"
    status, stdout, stderr = cli(capsys, "features", run2d.path, "--tensorboard", out,
                                 "--test-examples", 50)
    assert status == 0, stderr
    assert "all 50 mnist images" in stdout
    assert np.loadtxt(out / "latent_means.tsv").shape == (50, 2)
    assert json.loads(served(out)("/runs").data) == ["."]
    text = tf.make_ndarray(events(out).Tensors("projector")[0].tensor_proto)
    assert b"all 50 mnist images" in text.item()

    # An existing projector is kept without --overwrite, replaced (one events file) with it.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    status, stdout, stderr = cli(capsys, "features", run2d.path, "--tensorboard", out)
    assert status == 2 and len(stderr.splitlines()) == 1
    assert "--tensorboard" in stderr and "not empty" in stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    status, stdout, stderr = cli(capsys, "features", run2d.path, "--tensorboard", out,
                                 "--test-examples", 20, "--overwrite")
    assert status == 0, stderr
    assert np.loadtxt(out / "latent_means.tsv").shape == (20, 2)
    assert len(list(out.glob("events.out.tfevents.*"))) == 1
    assert not list(tmp_path.glob(".proj.tmp*"))


@pytest.mark.parametrize("case", ["file", "not_a_run", "other_dir", "neither"])
def test_features_tensorboard_refuses_bad_input_in_one_line(run2d, tmp_path, capsys, case):
    target = tmp_path / "proj"
    run = run2d.path
    args = ["--tensorboard", target]
    if case == "file":
        target.write_text("mine")
    elif case == "not_a_run":
        run = tmp_path / "missing"
    elif case == "other_dir":
        target.mkdir()
        (target / "notes.txt").write_text("mine")
        args.append("--overwrite")
    else:
        args = []
    status, stdout, stderr = cli(capsys, "features", run, *args)
    assert status == 2 and len(stderr.splitlines()) == 1, stderr
    expected = {"file": "--tensorboard: expected a directory",
                "not_a_run": "RUN_DIR: expected a run directory",
                "other_dir": "--overwrite: expected a projector directory written by tfvae",
                "neither": "--out: expected an .npz path, or --tensorboard DIR"}[case]
    assert expected in stderr
    if case == "file":
        assert target.read_text() == "mine"
    if case == "other_dir":
        assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_sprite_layout_keeps_within_the_plugins_limits():
    assert tfvae_projector.sprite_layout(60000, 28, 28) == (10000, 100)
    assert tfvae_projector.sprite_layout(100, 28, 20) == (100, 10)
    for num, height, width in ((60000, 28, 28), (20000, 96, 96), (10000, 200, 10),
                               (10000, 10, 300), (7, 64, 64)):
        count, columns = tfvae_projector.sprite_layout(num, height, width)
        rows = math.ceil(count / columns)
        assert count == min(num, 10000, (8192 // height) * (8192 // width))
        assert columns * width <= 8192 and rows * height <= 8192, (num, height, width)


def test_write_projector_states_what_a_limited_sprite_leaves_out(run2d, tmp_path, monkeypatch):
    monkeypatch.setattr(tfvae_projector, "MAX_POINTS", 30)
    data = load_dataset("mnist", binarize="none", train_examples=1, test_examples=100)
    shown = tfvae_projector.write_projector(run2d.load_model(), data.x_test, data.y_test,
                                            tmp_path / "p")
    assert shown["points"] == 30 and "the first 30 of 100" in shown["description"]
    assert len((tmp_path / "p" / "metadata.tsv").read_text().splitlines()) == 31
    sprite = Image.open(tmp_path / "p" / "sprite.png")
    assert sprite.size == (6 * 28, 5 * 28)


def test_a_projector_without_labels_has_the_index_alone(run2d, tmp_path):
    data = load_dataset("mnist", binarize="none", train_examples=1, test_examples=12)
    tfvae_projector.write_projector(run2d.load_model(), data.x_test, None, tmp_path / "p")
    # One column: the plugin reads it without a header.
    assert (tmp_path / "p" / "metadata.tsv").read_text().split() == [str(i) for i in range(12)]


def test_a_resume_may_add_the_projector_and_replaces_its_own(tmp_path):
    from tfvae.training.pipeline import train

    settings = {"model_config": {"latent_dim": 3, "hidden": 16},
                "data_config": {"name": "mnist", "train_examples": 200, "test_examples": 30},
                "batch_size": 100, "optimizer": "adam", "learning_rate": 1e-3, "verbose": 0}
    run = RunDirectory(tmp_path / "run")
    train(run.path, epochs=1, **settings)
    assert run.read_config()["train"]["projector"] is False
    assert not run.projector_dir.exists()
    train(run.path, epochs=2, resume=True, projector=True, **settings)
    assert run.read_config()["train"]["projector"] is True
    first = np.loadtxt(run.projector_dir / "latent_means.tsv")
    assert first.shape == (30, 3)
    train(run.path, epochs=3, resume=True, **settings)  # the run keeps its projector setting
    again = np.loadtxt(run.projector_dir / "latent_means.tsv")
    np.testing.assert_allclose(again, latent_means(run.load_model(), load_dataset(
        "mnist", binarize="none", train_examples=1, test_examples=30).x_test), atol=1e-5)
    assert not np.allclose(again, first)  # the final model's, not the first resume's
    assert len(list(run.projector_dir.glob("events.out.tfevents.*"))) == 1
    steps = [e.step for e in events(run.tensorboard_dir / "train").Tensors("samples")]
    assert steps == [0, 1, 2]
