"""Conditional VAEs (Sohn et al., 2015): labels into both networks, training on (x, y), sampling a
class, the export's ``label`` input through every loader, and the CLI."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import VAE, InputError
from tfvae.cli import main
from tfvae.data import load_dataset
from tfvae.export.metadata import read_metadata
from tfvae.export.signatures import input_specs, serving_functions
from tfvae.export.versions import export_run
from tfvae.applications.features import softmax_regression
from tfvae.evaluation.likelihood import log_likelihood
from tfvae.models import load_model
from tfvae.runs import RunDirectory
from tfvae.applications.synthesis import augment, class_samples
from tfvae.training.pipeline import train

X = (np.random.default_rng(0).random((12, 28, 28, 1)) < 0.3).astype(np.float32)
Y = np.arange(12) % 3


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    """A conditional VAE trained briefly on MNIST digits, as `tfvae train --conditional` does."""
    run_dir = tmp_path_factory.mktemp("conditional") / "run"
    # Two latent dimensions: a small code leaves the class to the label (with 8, samples from p(z)
    # mix classes after so short a training).
    train(run_dir, model_config={"latent_dim": 2, "hidden": 256, "activation": "relu"},
          data_config={"name": "mnist", "train_examples": 8000, "test_examples": 500},
          conditional=True, epochs=4, batch_size=100, optimizer="adam", learning_rate=1e-3,
          seed=0, verbose=0,
          jit_compile=False)  # 32,000 examples: "auto" would first time XLA with six fits
    return run_dir


@pytest.fixture(scope="module")
def conditional_export(conditional_run, tmp_path_factory):
    """The run exported once, as version 1 of "cvae": the loaders' tests only read it."""
    return export_run(conditional_run, "cvae", base_dir=tmp_path_factory.mktemp("export"),
                      num_samples=50)


def _small(**kwargs):
    keras.utils.set_random_seed(0)
    return VAE(latent_dim=3, hidden=16, num_classes=3, seed=0, **kwargs)


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_the_label_changes_both_networks_and_nothing_else(architecture):
    model = _small(architecture=architecture)
    q0, q1 = model.encode(X, np.zeros(12, int)), model.encode(X, np.ones(12, int))
    assert not np.allclose(q0.mean(), q1.mean())
    z = np.zeros((12, 3), np.float32)
    p0, p1 = model.decode(z, 0).mean(), model.decode(z, 1).mean()
    assert not np.allclose(p0, p1)
    # Each example's output depends on its own label alone.
    mixed = model.decode(z, np.r_[np.zeros(6, int), np.ones(6, int)]).mean()
    np.testing.assert_allclose(mixed[:6], p0[:6], atol=1e-6)
    np.testing.assert_allclose(mixed[6:], p1[6:], atol=1e-6)
    # Leading sample dimensions take the labels of the examples: z [S, B, D].
    stacked = model.decode(np.zeros((2, 12, 3), np.float32), Y).mean()
    np.testing.assert_allclose(stacked[1], model.decode(z, Y).mean(), atol=1e-6)


def test_fit_on_pairs_save_and_load_give_identical_outputs(tmp_path):
    model = _small()
    model.compile(optimizer="adam")
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    pipeline = tf.data.Dataset.from_tensor_slices((X, Y)).batch(4)
    model.fit(pipeline, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 6
    model.save(tmp_path / "c.keras")
    again = load_model(tmp_path / "c.keras")
    assert again.num_classes == 3 and again.get_config()["num_classes"] == 3
    np.testing.assert_allclose(again.reconstruct(X, Y), model.reconstruct(X, Y), atol=1e-6)
    np.testing.assert_allclose(again.sample(4, seed=5, labels=2), model.sample(4, seed=5, labels=2),
                               atol=1e-6)
    np.testing.assert_allclose(again.predict((X, Y), verbose=0), model.reconstruct(X, Y),
                               atol=1e-5)


def test_bad_labels_are_refused_naming_the_argument():
    model = _small()
    model.compile(optimizer="adam")
    cases = [
        (lambda: model.sample(2), "labels", "got none"),
        (lambda: model.sample(2, labels=[0, 1, 2]), "labels", "2 labels"),
        (lambda: model.sample(2, labels=3), "labels", "from 0 to 2"),
        (lambda: model.sample(2, labels=[0.5, 1]), "labels", "float"),
        (lambda: model.encode(X, -Y), "labels", "from 0 to 2"),
        (lambda: model.fit(X, epochs=1, verbose=0), "y", "images alone"),
        (lambda: model.fit(X, Y[:5], epochs=1, verbose=0), "y", "12 labels"),
        (lambda: model.evaluate(X, Y + 3, verbose=0), "y", "from 0 to 2"),
        (lambda: log_likelihood(model, X, 10), "labels", "got none"),
        (lambda: VAE(num_classes=1), "num_classes", "at least 2"),
        (lambda: VAE(num_classes=-1), "num_classes", ">= 0"),
        (lambda: VAE(latent_dim=2).sample(2, labels=1), "labels", "unconditional"),
    ]
    for call, argument, message in cases:
        with pytest.raises(InputError, match=message) as error:
            call()
        assert error.value.argument == argument
    # A label out of range in a tf.data pipeline is caught by the pipeline's check.
    with pytest.raises(tf.errors.InvalidArgumentError, match="label: expected class labels"):
        model.fit(tf.data.Dataset.from_tensor_slices((X, Y + 1)).batch(4), epochs=1, verbose=0)
    with pytest.raises(InputError, match="conditional"):
        from tfvae.models import Autoencoder
        Autoencoder(num_classes=3)


def test_log_likelihood_given_the_label_is_above_the_bound():
    model = _small()
    elbo = model.elbo(X, seed=1, labels=Y).numpy()
    ll = log_likelihood(model, X, 500, labels=Y, seed=1)
    # log p(x|y) >= E[ELBO]; with 500 samples the estimate sits above the one-sample ELBO's mean.
    assert ll.mean > elbo.mean()
    other = log_likelihood(model, X, 500, labels=(Y + 1) % 3, seed=1)
    assert not np.allclose(ll.per_example, other.per_example)


def test_generated_digits_are_recognised_as_their_label(conditional_run):
    dataset = load_dataset("mnist", binarize="none", train_examples=20000, test_examples=2000)
    # Softmax regression on real digits, scored on real test digits and on generated ones.
    score = softmax_regression(dataset.x_train, dataset.y_train, steps=1000)
    real_accuracy = score(dataset.x_test, dataset.y_test)
    model = RunDirectory(conditional_run).load_model()
    per_class = 100
    images, labels = class_samples(model, per_class, seed=3)
    accuracy = score(images, labels)
    n, chance = len(labels), 0.1
    # Far above chance: more than 6 binomial standard errors of a chance classifier, and at least
    # half of what the classifier manages on real digits.
    margin = 6 * np.sqrt(chance * (1 - chance) / n)
    print(f"classifier on real digits {real_accuracy:.3f}, on generated ones {accuracy:.3f}")
    assert real_accuracy > 0.85
    assert accuracy > max(chance + margin, real_accuracy / 2)
    # And each class on its own is recognised more often than chance.
    per_label = [score(images[labels == k], labels[labels == k]) for k in range(10)]
    assert min(per_label) > chance


def test_the_run_records_the_classes_and_evaluates_given_labels(conditional_run, capsys):
    config = RunDirectory(conditional_run).read_config()
    assert config["model"]["num_classes"] == 10 and config["train"]["conditional"] is True
    rows = RunDirectory(conditional_run).read_metrics()
    assert len(rows) == 4 and rows[-1]["active_units"] > 0
    code, out, err = _cli(capsys, "evaluate", conditional_run)
    assert code == 0, err
    elbo = float(out.split("test elbo: ")[1].split()[0])
    assert abs(elbo - rows[-1]["test_elbo"]) < 3.0


def test_export_takes_a_label_in_every_signature(conditional_run, conditional_export):
    path = conditional_export
    model = RunDirectory(conditional_run).load_model()
    meta = read_metadata(path)
    assert meta["conditional"] is True and meta["num_classes"] == 10
    assert all(sig["inputs"][-1] == "label" for sig in meta["signatures"].values())
    assert [s.name for s in input_specs(model)["sample"]] == ["seed", "label"]
    x = RunDirectory(conditional_run).load_dataset(test_examples=3).x_test
    inputs = {"x": x, "seed": np.array([0, 7, 2**40 + 3], np.int64),
              "z": np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32),
              "label": np.array([7, 0, 7], np.int64)}
    functions = serving_functions(model, 50)
    want = {}
    for sig, specs in input_specs(model).items():
        outputs = functions[sig](*[tf.constant(inputs[s.name]) for s in specs])
        want.update({f"{sig}/{k}": v.numpy() for k, v in outputs.items()})
    # Rows with the same seed and label agree; another label gives another image.
    assert not np.allclose(want["sample/x_mean"][0], want["sample/x_mean"][1])
    np.testing.assert_allclose(want["sample/x_mean"][0],
                               model.decode(want["sample/z"][:1], 7).mean()[0], atol=1e-5)

    # TF Serving's loader: the TF1 SavedModelBundle path, by tensor names.
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        for sig, specs in input_specs(model).items():
            signature = meta_graph.signature_def[sig]
            aliases = list(signature.outputs)
            values = session.run([signature.outputs[a].name for a in aliases],
                                 {signature.inputs[s.name].name: inputs[s.name] for s in specs})
            for alias, value in zip(aliases, values):
                np.testing.assert_allclose(value, want[f"{sig}/{alias}"], atol=1e-5, rtol=1e-5)
        sample = meta_graph.signature_def["sample"]
        with pytest.raises(tf.errors.InvalidArgumentError, match="label: expected class labels"):
            session.run(sample.outputs["x_mean"].name,
                        {sample.inputs["seed"].name: inputs["seed"],
                         sample.inputs["label"].name: np.array([1, 10, 2], np.int64)})
        with pytest.raises(tf.errors.InvalidArgumentError, match="one label per example"):
            session.run(sample.outputs["x_mean"].name,
                        {sample.inputs["seed"].name: inputs["seed"],
                         sample.inputs["label"].name: np.array([1, 2], np.int64)})


def _cli(capsys, *argv):
    """``tfvae ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_samples_a_class_and_a_row_per_class(conditional_run, tmp_path, capsys):
    from PIL import Image

    from tfvae.images import grid

    model = RunDirectory(conditional_run).load_model()
    code, out, err = _cli(capsys, "sample", conditional_run, "--label", "7", "--num", "8",
                          "--seed", "4", "--out", tmp_path / "sevens.png")
    assert code == 0, err
    assert "of class 7" in out
    expected = grid(model.sample(8, seed=4, labels=7).numpy())
    got = np.asarray(Image.open(tmp_path / "sevens.png"))[::2, ::2]
    np.testing.assert_array_less(np.abs(got.astype(int) - expected[..., 0]), 2)

    code, out, err = _cli(capsys, "sample", conditional_run, "--num", "30",
                          "--out", tmp_path / "rows.png")
    assert code == 0, err
    rows = np.asarray(Image.open(tmp_path / "rows.png"))
    assert rows.shape == (2 * (10 * 29 + 1), 2 * (3 * 29 + 1))

    np.savez(tmp_path / "unlabelled.npz", x=X)
    for argv, argument in [
        (["sample", conditional_run, "--label", "10", "--out", tmp_path / "bad.png"], "--label"),
        (["features", conditional_run, "--out", tmp_path / "z.npz"], "RUN_DIR"),
        (["augment", conditional_run, "--input", tmp_path / "unlabelled.npz",
          "--out", tmp_path / "a.npz"], "--input"),
    ]:
        code, out, err = _cli(capsys, *argv)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and argument in err, err
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.png", "sevens.png",
                                                           "unlabelled.npz"]


def test_augment_keeps_each_draw_in_its_class(conditional_run, tmp_path, capsys):
    model = RunDirectory(conditional_run).load_model()
    x = RunDirectory(conditional_run).load_dataset(test_examples=4).x_test
    y = np.array([1, 1, 8, 8])
    images, labels, source = augment(model, x, y, per_example=3, temperature=0.0)
    np.testing.assert_array_equal(labels, np.repeat(y, 3))
    # At temperature 0 each draw is the reconstruction given the example's label.
    np.testing.assert_allclose(images[::3], model.reconstruct(x, y), atol=1e-5)
    code, _, err = _cli(capsys, "augment", conditional_run, "--per-class", "2",
                        "--out", tmp_path / "a.npz")
    assert code == 0, err
    with np.load(tmp_path / "a.npz") as out:
        np.testing.assert_array_equal(out["y"], np.repeat(np.arange(10), 2))
        assert out["x"].shape == (20, 28, 28, 1)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_the_client_sends_labels_to_a_served_conditional_model(conditional_run,
                                                              conditional_export, protocol):
    from serving_double import ModelServer
    from tfvae.export.client import Client

    model = RunDirectory(conditional_run).load_model()
    seeds, labels = np.array([5, 5, 9], np.int64), np.array([3, 8, 3])
    want = serving_functions(model, 50)["sample"](tf.constant(seeds), tf.constant(labels,
                                                                                   tf.int64))
    server = ModelServer({"cvae": conditional_export.parent}).start()
    try:
        url = server.grpc_url if protocol == "grpc" else server.rest_url
        with Client(url, "cvae") as client:
            got = client.sample(seeds, labels=labels)
            np.testing.assert_allclose(got["x_mean"], want["x_mean"], atol=1e-5)
            x = RunDirectory(conditional_run).load_dataset(test_examples=2).x_test
            recon = client.reconstruct(x, labels=[1, 2])["x_mean"]
            np.testing.assert_allclose(recon, model.reconstruct(x, [1, 2]), atol=1e-5)
            with pytest.raises(InputError, match="labels"):
                client.sample(seeds, labels=[1, 2])
    finally:
        server.stop()


def test_the_c_api_example_encodes_given_a_label(conditional_run, conditional_export, c_example,
                                                 tmp_path):
    import os
    import subprocess

    exe = c_example
    path = conditional_export
    model = RunDirectory(conditional_run).load_model()
    x = RunDirectory(conditional_run).load_dataset(test_examples=2).x_test
    x.tofile(tmp_path / "two.f32")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    def encode(*flags):
        return subprocess.run([str(exe), *flags, str(path), "two.f32"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    result = encode("--label", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout)
    np.testing.assert_allclose(got["z_mean"], model.encode(x, [4, 4]).mean(), atol=1e-5)
    for flags, message in [((), "--label is required"), (("--label", "10"), "label: expected")]:
        result = encode(*flags)
        assert result.returncode in (1, 2) and message in result.stderr, result.stderr[-2000:]


def test_train_conditional_on_a_users_npz_with_labels(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = (rng.random((60, 8, 8)) < 0.4).astype(np.float32)
    np.savez(tmp_path / "data.npz", x_train=images[:40], y_train=np.arange(40) % 4,
             x_test=images[40:], y_test=np.arange(20) % 4)
    code, out, err = _cli(capsys, "train", "--out", tmp_path / "run", "--dataset",
                          tmp_path / "data.npz", "--conditional", "--epochs", "1",
                          "--latent-dim", "2", "--hidden", "8", "--batch-size", "10")
    assert code == 0, err
    config = RunDirectory(tmp_path / "run").read_config()
    assert config["model"]["num_classes"] == 4
    # A resumed conditional run keeps training on its labelled pairs.
    code, out, err = _cli(capsys, "train", "--out", tmp_path / "run", "--resume", "--epochs", "2")
    assert code == 0, err
    np.savez(tmp_path / "unlabelled.npz", x_train=images[:40], x_test=images[40:])
    code, out, err = _cli(capsys, "train", "--out", tmp_path / "run2", "--dataset",
                          tmp_path / "unlabelled.npz", "--conditional")
    assert code == 2 and "--conditional" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run2").exists()
