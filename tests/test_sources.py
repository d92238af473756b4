"""A data source added with one decorator is a dataset like the built-in ones: it trains, saves,
reloads, evaluates from the command line and exports; an unknown name is one line naming them."""

import numpy as np
import pytest

import tfvae
import tfvae.cli
from tfvae.data import SOURCES, Splits


# As docs/extending.md shows it: 400 images of a bar, horizontal (label 0) or vertical (label 1).
@tfvae.data.SOURCES.register("toy")
def toy():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    images = np.zeros((400, 28, 28), np.float32)
    for image, label, at in zip(images, labels, rng.integers(4, 24, 400)):
        if label:
            image[:, at - 2:at + 2] = 1.0
        else:
            image[at - 2:at + 2, :] = 1.0
    return tfvae.data.Splits(x_train=images[:300], x_test=images[300:],
                             y_train=labels[:300], y_test=labels[300:])


def test_a_registered_source_trains_saves_reloads_evaluates_and_exports(tmp_path, capsys):
    assert "toy" in SOURCES.names()
    dataset = tfvae.data.load_dataset("toy")
    assert dataset.image_shape == (28, 28, 1) and len(dataset.x_train) == 300
    assert dataset.likelihood == "bernoulli" and dataset.binarize == "none"

    run = tmp_path / "run"
    tfvae.training.train(run, model_config={"latent_dim": 2, "hidden": 16},
                         data_config={"name": "toy"}, epochs=1, batch_size=100,
                         jit_compile=False, verbose=0)
    model = tfvae.runs.RunDirectory(run).load_model()
    assert model.image_shape == (28, 28, 1)

    assert tfvae.cli.main(["evaluate", run, "--batch-size", "100"]) == 0
    out = capsys.readouterr().out
    assert "test elbo:" in out and "; 100 examples, binarization none" in out
    exported = tfvae.export.export_run(run, "toy", base_dir=tmp_path / "export")
    assert (exported / "saved_model.pb").is_file()
    assert tfvae.export.read_metadata(exported)["dataset"] == "toy"


def test_a_source_must_return_splits(monkeypatch):
    monkeypatch.setattr(SOURCES, "_members", dict(SOURCES._members))  # forgotten afterwards

    @SOURCES.register("not_splits")
    def not_splits():
        return np.zeros((10, 28, 28))

    with pytest.raises(tfvae.InputError, match="tfvae.data.Splits") as err:
        tfvae.data.load_dataset("not_splits")
    assert str(err.value).startswith("name='not_splits': ")
    assert Splits is tfvae.data.sources.Splits


def test_an_unknown_dataset_is_one_line_naming_the_known_ones(tmp_path, capsys):
    assert tfvae.cli.main(["train", "--out", tmp_path / "run", "--dataset", "cifar"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'cifar'" in err
    assert "mnist, binarized_mnist, frey_face, toy" in err and "tfds:NAME" in err
    assert not (tmp_path / "run").exists()


def test_the_help_lists_registered_sources(capsys):
    with pytest.raises(SystemExit):
        tfvae.cli.main(["train", "--help"])
    assert "frey_face, toy, tfds:NAME" in " ".join(capsys.readouterr().out.split())
