"""Every entry point refuses what it cannot do up front, in one line naming the argument and its
limit (the flag on the command line, the Python argument in the library), and every message that
says what to do next is true in the state it is printed in: each test of advice does what the
message says."""

import json
import resource
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import cli_env
from tfvae import MCEM, VAE, Autoencoder, WakeSleep
from tfvae.cli import main
from tfvae.errors import InputError
from tfvae.export import export_model
from tfvae.export.versions import export_run
from tfvae.evaluation.likelihood import log_likelihood
from tfvae.runs import RunDirectory
from tfvae.training.pipeline import TrainingDiverged, train

BIG = str(10 ** 9)
# The smallest run that trains in a few seconds (as tests/test_reliability.py's).
TINY = ["--train-examples", "600", "--test-examples", "200", "--hidden", "32",
        "--latent-dim", "3", "--batch-size", "100", "--optimizer", "adam", "--epochs", "1",
        "--quiet"]

# RUN is the tiny trained run, OUT a fresh directory, IMAGES an .npz of four images.
CASES = {
    "train-latent-dim": (["train", "--out", "OUT/r", "--latent-dim", "100000"], "--latent-dim"),
    "train-image-size": (["train", "--out", "OUT/r", "--image-size", "100000", "100000"],
                         "--image-size"),
    "train-seed": (["train", "--out", "OUT/r", "--seed", str(2 ** 32)], "--seed"),
    "train-hidden": (["train", "--out", "OUT/r", "--hidden", BIG], "--hidden"),
    "train-depth": (["train", "--out", "OUT/r", "--depth", BIG], "--depth"),
    "train-num-samples": (["train", "--out", "OUT/r", "--num-samples", BIG], "--num-samples"),
    "train-batch-size": (["train", "--out", "OUT/r", "--batch-size", BIG, "--train-examples",
                          "100"], "--batch-size"),
    "train-kl-warmup": (["train", "--out", "OUT/r", "--kl-warmup-epochs", str(10 ** 20),
                         "--train-examples", "100"], "--kl-warmup-epochs"),
    "train-activation": (["train", "--out", "OUT/r", "--activation", "nope",
                          "--train-examples", "100"], "activation"),
    "train-prior-components": (["train", "--out", "OUT/r", "--prior", "mog", "--kl", "sampled",
                                "--prior-components", BIG, "--train-examples", "100"],
                               "--prior-components"),
    "train-flow-steps": (["train", "--out", "OUT/r", "--posterior", "iaf", "--flow-steps",
                          str(10 ** 6), "--train-examples", "100"], "--flow-steps"),
    "sample-num": (["sample", "RUN", "--num", BIG, "--out", "OUT/s.png"], "--num"),
    "sample-seed": (["sample", "RUN", "--seed", str(2 ** 32), "--out", "OUT/s.png"], "--seed"),
    "sample-seed-negative": (["sample", "RUN", "--seed", "-1", "--out", "OUT/s.png"], "--seed"),
    "reconstruct-num": (["reconstruct", "RUN", "--num", BIG, "--out", "OUT/r.png"], "--num"),
    "evaluate-seed": (["evaluate", "RUN", "--seed", str(2 ** 32)], "--seed"),
    "evaluate-batch-size": (["evaluate", "RUN", "--batch-size", BIG], "--batch-size"),
    "interpolate-steps": (["interpolate", "RUN", "--from", "0", "--to", "1", "--steps", BIG,
                           "--out", "OUT/i.png"], "--steps"),
    "augment-per-example": (["augment", "RUN", "--input", "IMAGES", "--per-example", BIG,
                             "--out", "OUT/a.npz"], "--per-example"),
    "augment-seed": (["augment", "RUN", "--input", "IMAGES", "--seed", "-1",
                      "--out", "OUT/a.npz"], "--seed"),
    "probe-seed": (["probe", "RUN", "--seed", str(2 ** 32)], "--seed"),
    "reproduce-seed": (["reproduce", "fig2", "--out", "OUT/p", "--seed", str(2 ** 32)],
                       "--seed"),
    "export-model-name-newline": (["export", "RUN", "--model-name", "name\n", "--base-dir",
                                   "OUT"], "--model-name"),
    "export-model-name-long": (["export", "RUN", "--model-name", "m" * 256, "--base-dir", "OUT"],
                               "--model-name"),
    "export-version": (["export", "RUN", "--model-name", "m", "--base-dir", "OUT",
                        "--version", "99999999999999999999999"], "--version"),
    "export-num-samples": (["export", "RUN", "--model-name", "m", "--base-dir", "OUT",
                            "--num-samples", BIG], "--num-samples"),
    # Refused before any connection is tried (nothing listens on port 9).
    "client-version": (["client", "status", "--url", "http://127.0.0.1:9", "--model-name", "m",
                        "--version", "99999999999999999999999"], "--version"),
    "client-timeout": (["client", "status", "--url", "http://127.0.0.1:9", "--model-name", "m",
                        "--timeout", "1e30"], "--timeout"),
    "client-model-name": (["client", "status", "--url", "http://127.0.0.1:9", "--model-name",
                           "m\n"], "--model-name"),
    "client-seeds": (["client", "sample", "--url", "http://127.0.0.1:9", "--model-name", "m",
                      "--seeds", str(2 ** 70)], "seeds"),
    "client-image": (["client", "encode", "--url", "http://127.0.0.1:9", "--model-name", "m",
                      "OUT"], "IMAGE"),
}


def _one_line(capsys, command, argument):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"tfvae {command}") and argument in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def places(tmp_path, tiny_run):
    out = tmp_path / "out"
    out.mkdir()
    images = (np.random.default_rng(1).random((4, 28, 28)) * 255).astype(np.uint8)
    np.savez(tmp_path / "images.npz", x=images)
    return {"RUN": str(tiny_run), "OUT": str(out), "IMAGES": str(tmp_path / "images.npz")}


@pytest.mark.parametrize("argv, argument", CASES.values(), ids=CASES.keys())
def test_out_of_range_is_refused_in_one_line_naming_the_flag(argv, argument, places, capsys):
    argv = [next((places[k] + a[len(k):] for k in places if a == k or a.startswith(k + "/")), a)
            for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    line = _one_line(capsys, argv[0], argument)
    assert "expected" in line
    assert list(Path(places["OUT"]).iterdir()) == []  # nothing written


# -- the Python API: every model type, every public method -------------------------------------

SHAPE = (28, 28, 1)
MODELS = {
    "vae": lambda: VAE(image_shape=SHAPE, latent_dim=2, hidden=8, seed=0),
    "autoencoder": lambda: Autoencoder(image_shape=SHAPE, latent_dim=2, hidden=8, seed=0),
    "wake_sleep": lambda: WakeSleep(image_shape=SHAPE, latent_dim=2, hidden=8, seed=0),
    "mcem": lambda: MCEM(num_train=10, image_shape=SHAPE, latent_dim=2, hidden=8, seed=0),
}
X = np.random.default_rng(0).random((10, 28, 28)).astype(np.float32)


@pytest.mark.parametrize("kwargs, argument", [
    ({"activation": "nope"}, "activation"),
    ({"kernel_initializer": "nope"}, "kernel_initializer"),
    ({"seed": 2 ** 70}, "seed"),
    ({"seed": 2 ** 32}, "seed"),
    ({"image_shape": (0,)}, "image_shape"),
    ({"image_shape": (28, 28)}, "image_shape"),
    ({"latent_dim": 100000}, "latent_dim"),
    ({"image_shape": (100000, 100000, 1)}, "image_shape"),
    ({"hidden": 10 ** 7}, "hidden"),
    ({"prior": "mog", "kl": "sampled", "prior_components": 10 ** 9}, "prior_components"),
    ({"prior": "vamp", "kl": "sampled", "prior_components": 10 ** 6}, "prior_components"),
    ({"posterior": "iaf", "flow_steps": 10 ** 6}, "flow_steps"),
    ({"kl_warmup_steps": 2 ** 63}, "kl_warmup_steps"),
], ids=lambda value: str(value)[:40])
def test_a_model_refuses_settings_naming_the_argument(kwargs, argument):
    with pytest.raises(InputError, match=f"^{argument}: expected"):
        VAE(**kwargs)


def test_vectors_are_taken_as_images_of_one_row():
    """The shape the image_shape message offers for vectors works."""
    model = VAE(image_shape=(1, 10, 1), latent_dim=2, hidden=4, seed=0)
    assert model.reconstruct(np.random.default_rng(0).random((3, 10))).shape == (3, 1, 10, 1)


def _calls(model):
    """(method call, argument) for every public method of ``model`` given what it cannot take."""
    dicts = tf.data.Dataset.from_tensor_slices({"x": X}).batch(5)
    calls = [(lambda: model.decode(None), "z"),
             (lambda: model.decode(np.zeros((3, 5))), "z"),
             (lambda: model.sample(10 ** 12), "num"),
             (lambda: model.sample(2, seed=2 ** 40), "seed"),
             (lambda: model.sample(2, seed="a"), "seed"),
             (lambda: model.fit(None, epochs=1, verbose=0), "x"),
             (lambda: model.fit({"x": X}, epochs=1, verbose=0), "x"),
             (lambda: model.fit(dicts, epochs=1, verbose=0), "x"),
             (lambda: model.evaluate(None, verbose=0), "x"),
             (lambda: model.predict(None, verbose=0), "x"),
             (lambda: model.predict("images", verbose=0), "x")]
    if model.has_encoder:
        calls += [(lambda: model.encode(None), "x"), (lambda: model.reconstruct(None), "x"),
                  (lambda: model.reconstruct("image"), "x")]
    if not model.needs_example_index:  # MCEM trains on (x, index): its y is the index
        labelled = tf.data.Dataset.from_tensor_slices((X, np.zeros(10, np.int32))).batch(5)
        calls += [(lambda: model.fit(X, np.zeros(10, np.int32), epochs=1, verbose=0), "y"),
                  (lambda: model.fit(labelled, epochs=1, verbose=0), "x")]
    if model.has_bound and model.has_encoder:
        calls += [(lambda: model.elbo(None), "x"), (lambda: log_likelihood(model, None, 10),
                                                    "data")]
    if isinstance(model, Autoencoder):
        calls.append((lambda: model.log_likelihood(None), "x"))
    return calls


@pytest.mark.parametrize("name", MODELS)
def test_every_method_refuses_bad_input_naming_the_argument(name):
    model = MODELS[name]()
    model.compile(optimizer="adam")
    for call, argument in _calls(model):
        with pytest.raises(InputError, match=f"^{argument}: expected"):
            call()


def test_export_refuses_a_path_or_name_it_cannot_take(tiny_run, tmp_path):
    model = MODELS["vae"]()
    for path in (None, "", tmp_path / "file" / "1"):
        (tmp_path / "file").write_text("a file, not a directory")
        with pytest.raises(InputError, match="^path: expected"):
            export_model(model, path)
    if sys.platform.startswith("linux"):  # a place os.access calls writable for root
        with pytest.raises(InputError, match="^path: expected"):
            export_model(model, "/sys/tfvae/1")
    for name in ("name\n", "m" * 256, "", "../up", ".hidden"):
        with pytest.raises(InputError, match="^model_name: expected"):
            export_run(tiny_run, name, base_dir=tmp_path)
    with pytest.raises(InputError, match="^version: expected"):
        export_run(tiny_run, "m", base_dir=tmp_path, version=2 ** 63)
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


# -- advice that is true: each test does what the message says ---------------------------------

def test_divergence_before_any_checkpoint_says_so_and_overwrite_starts_again(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--out", run_dir, *TINY, "--learning-rate", "1e30"]) == 1
    line = _one_line(capsys, "train", "no checkpoint was written")
    assert "--overwrite" in line and "--learning-rate" in line
    assert not RunDirectory(run_dir).checkpoint_path("last").exists()
    assert main(["train", "--out", run_dir, *TINY, "--overwrite", "--learning-rate",
                 "0.003"]) == 0


class _PoisonAtSecondEpoch(keras.callbacks.Callback):
    """Makes the loss NaN in the second epoch, after the first epoch's checkpoint."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            for variable in self.model.decoder.trainable_variables:
                variable.assign(np.full(variable.shape, np.nan, np.float32))


def test_divergence_after_a_checkpoint_names_it_and_overwrite_starts_again(tmp_path, capsys):
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as caught:
        train(run_dir, model_config={"latent_dim": 3, "hidden": 32},
              data_config={"name": "mnist", "train_examples": 600, "test_examples": 200},
              epochs=2, batch_size=100, optimizer="adam", learning_rate=3e-3, seed=0,
              verbose=0, callbacks=[_PoisonAtSecondEpoch()])
    last = RunDirectory(run_dir).checkpoint_path("last")
    assert last.is_file() and str(last) in str(caught.value) and "epoch 2" in str(caught.value)
    assert "overwrite=True" in str(caught.value)
    assert main(["train", "--out", run_dir, *TINY, "--overwrite"]) == 0


def test_a_full_disk_before_any_checkpoint_says_so_and_the_advice_works(tmp_path):
    run_dir = tmp_path / "run"

    def small_disk():  # config.json fits, checkpoints/last.keras does not
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    full = subprocess.run([sys.executable, "-m", "tfvae", "train", "--out", str(run_dir), *TINY],
                          env=cli_env(), capture_output=True, text=True, timeout=600,
                          preexec_fn=small_disk)
    assert full.returncode == 1, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in full.stderr, full.stderr
    assert "no checkpoint was written yet" in lines[0] and "--overwrite" in lines[0], lines[0]
    assert "--resume" not in lines[0]
    assert main(["train", "--out", run_dir, *TINY, "--overwrite"]) == 0
    assert json.loads((run_dir / "state.json").read_text())["status"] == "finished"


def test_overwrite_advice_for_an_existing_output_works(tiny_run, tmp_path, capsys):
    out = tmp_path / "s.png"
    out.write_bytes(b"an older grid")
    args = ["sample", tiny_run, "--num", "4", "--out", out]
    assert main(args) == 2
    assert "--overwrite" in _one_line(capsys, "sample", "--out")
    assert main([*args, "--overwrite"]) == 0
    assert out.read_bytes() != b"an older grid"


def test_overwrite_is_advised_only_for_a_projector_it_would_replace(tiny_run, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's own file")
    assert main(["features", tiny_run, "--tensorboard", mine]) == 2
    assert "--overwrite" not in _one_line(capsys, "features", "--tensorboard")
    projector = tmp_path / "projector"
    assert main(["features", tiny_run, "--tensorboard", projector]) == 0
    capsys.readouterr()
    assert main(["features", tiny_run, "--tensorboard", projector]) == 2
    assert "--overwrite" in _one_line(capsys, "features", "--tensorboard")
    assert main(["features", tiny_run, "--tensorboard", projector, "--overwrite"]) == 0
