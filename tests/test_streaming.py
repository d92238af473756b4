"""Datasets streamed from disk: image folders and .npy files read as training uses them, the
prepared format (``tfvae prepare``), exact resume, two workers sharing shards, the choice of
storage."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import cli_env
from tfvae import data
from tfvae.cli import main
from tfvae.data import prepared, streams
from tfvae.data.pipelines import make_pipeline, make_train_stream
from tfvae.errors import InputError
from tfvae.runs import RunDirectory
from tfvae.training.pipeline import train
from tfvae.training.stops import TrainingInterrupted

WORKER = Path(__file__).with_name("streaming_worker.py")
SMALL = {"model_config": {"latent_dim": 2, "hidden": 8}, "batch_size": 16, "optimizer": "adam",
         "learning_rate": 1e-3, "seed": 4, "verbose": 0, "jit_compile": False}


def image_folder(path, count=60, size=(8, 8)):
    """``count`` PNGs: colour, with a grey one and a 16-bit grey one among them, and two files
    that are no image (a text file and a FIFO, both named like images)."""
    from PIL import Image

    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        if i == 3:
            image = image.convert("L")
        if i == 5:
            image = Image.fromarray((pixels[..., 0].astype(np.uint16) * 257)).convert("I;16")
        image.save(path / f"{i:03d}.png")
    (path / "notes.png").write_text("not an image")
    os.mkfifo(path / "pipe.png")
    return path


def labelled_npz(path, n_train=90, n_test=30, size=8):
    rng = np.random.default_rng(1)
    np.savez(path, x_train=rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
             y_train=np.arange(n_train), x_test=rng.integers(0, 256, (n_test, size, size),
                                                              dtype=np.uint8),
             y_test=np.arange(n_test) + 1000)
    return path


def batches(ds, n):
    return [b.numpy() if not isinstance(b, tuple) else b[0].numpy() for b in ds.take(n)]


def test_a_streamed_folder_reads_the_pixels_and_batches_of_the_in_memory_reader(tmp_path, capsys):
    folder = image_folder(tmp_path / "images")
    held = data.load_dataset(str(folder), storage="memory")
    first = capsys.readouterr().err
    streamed = data.load_dataset(str(folder), storage="stream")
    # The same files are left out, named in the same warning, and nothing waits on the FIFO.
    assert "notes.png" in first and "pipe.png" in first
    assert capsys.readouterr().err == first
    assert data.is_stream(streamed.x_train) and not data.is_stream(held.x_train)
    assert streamed.image_shape == held.image_shape == (8, 8, 3)
    assert len(streamed.x_train) == len(held.x_train) == 54 and len(streamed.x_test) == 6
    np.testing.assert_array_equal(np.asarray(streamed.x_train), held.x_train)
    np.testing.assert_array_equal(np.asarray(streamed.x_test), held.x_test)
    # An indexed stream visits each epoch in the in-memory stream's order: the same batches.
    ours = batches(make_train_stream(streamed.x_train, batch_size=16, seed=7, first_epoch=2), 8)
    theirs = batches(make_train_stream(held.x_train, batch_size=16, seed=7, first_epoch=2), 8)
    assert [len(b) for b in ours] == [16, 16, 16, 6] * 2
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    # The first images read alone, resized on the fly as the in-memory reader resizes them.
    small = data.load_dataset(str(folder), storage="stream", image_size=[4, 4], test_examples=2)
    resized = data.load_dataset(str(folder), storage="memory", image_size=[4, 4])
    np.testing.assert_array_equal(small.x_test.head(2), resized.x_test[:2])


def test_an_npy_file_is_memory_mapped_and_matches_the_array(tmp_path):
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, (40, 6, 6), dtype=np.uint8)
    np.save(tmp_path / "grey.npy", grey)
    real = rng.normal(size=(40, 5)).astype(np.float32)
    np.save(tmp_path / "real.npy", real)
    for name, expected in (("grey.npy", grey[..., None] / np.float32(255)), ("real.npy", real)):
        streamed = data.load_dataset(str(tmp_path / name), storage="stream")
        assert isinstance(streamed.x_train, streams.MemoryMappedArray)
        assert isinstance(streamed.x_train.array, np.memmap)
        np.testing.assert_allclose(np.asarray(streamed.x_train), expected[:36], rtol=1e-6)
        np.testing.assert_allclose(np.asarray(streamed.x_test), expected[36:], rtol=1e-6)
    assert data.load_dataset(str(tmp_path / "real.npy"), storage="stream").likelihood == "normal"


def test_prepare_writes_shards_that_read_back_as_the_source(tmp_path, monkeypatch):
    monkeypatch.setattr(prepared, "SHARD_BYTES", 2000)  # several shards of a small dataset
    source = labelled_npz(tmp_path / "digits.npz")
    index = data.prepare(str(source), tmp_path / "prepared", verbose=False)
    held = data.load_dataset(str(source))
    assert index["splits"]["train"]["count"] == 90 and index["dtype"] == "uint8"
    assert len(index["splits"]["train"]["shards"]) > 1 and index["labels"]
    assert not (tmp_path / "prepared.partial").exists()
    for storage in ("memory", "stream"):
        back = data.load_dataset(str(tmp_path / "prepared"), storage=storage)
        assert data.is_stream(back.x_train) == (storage == "stream")
        # The test split in the source's order; the training split shuffled once, each example
        # with its own label.
        np.testing.assert_array_equal(np.asarray(back.x_test), held.x_test)
        np.testing.assert_array_equal(back.y_test, held.y_test)
        train_x = np.asarray(back.x_train)
        np.testing.assert_array_equal(train_x, held.x_train[back.y_train])
        assert sorted(back.y_train) == list(range(90)) and list(back.y_train) != list(range(90))
    # A streamed epoch: every example once, in an order fixed by (seed, epoch) alone.
    stream = data.load_dataset(str(tmp_path / "prepared"), storage="stream").x_train
    labels = [np.concatenate([y for _, y in make_train_stream(
        stream, batch_size=16, seed=3, first_epoch=e, labels=stream.labels).take(6)])
        for e in (0, 1, 0)]
    assert sorted(labels[0]) == list(range(90)) and sorted(labels[1]) == list(range(90))
    assert list(labels[0]) == list(labels[2]) and list(labels[0]) != list(labels[1])
    # A ranked pipeline reads the test split in order, with its length known.
    test = make_pipeline(data.load_dataset(str(tmp_path / "prepared"), storage="stream").x_test,
                         batch_size=8)
    assert int(test.cardinality()) == 4


def test_a_killed_prepare_continues_and_a_finished_one_is_never_half_visible(tmp_path,
                                                                               monkeypatch):
    monkeypatch.setattr(prepared, "SHARD_BYTES", 1000)
    source = labelled_npz(tmp_path / "digits.npz")
    whole = data.prepare(str(source), tmp_path / "whole", verbose=False)
    real_write = prepared.storage.write_atomic
    written = []

    def killed_after_three(path, write, **kwargs):
        if Path(path).suffix == ".tfrecord":
            if len(written) == 3:
                raise KeyboardInterrupt  # what a kill leaves: the shards written so far
            written.append(Path(path).name)
        return real_write(path, write, **kwargs)

    monkeypatch.setattr(prepared.storage, "write_atomic", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        data.prepare(str(source), tmp_path / "again", verbose=False)
    assert not (tmp_path / "again").exists() and (tmp_path / "again.partial").is_dir()
    kept = {name: (tmp_path / "again.partial" / name).stat().st_ino for name in written}
    monkeypatch.setattr(prepared.storage, "write_atomic", real_write)
    again = data.prepare(str(source), tmp_path / "again", verbose=False)
    assert again["splits"] == whole["splits"]
    assert {name: (tmp_path / "again" / name).stat().st_ino for name in written} == kept
    with pytest.raises(InputError, match="^out: expected a directory that does not exist"):
        data.prepare(str(source), tmp_path / "again", verbose=False)


def test_a_missing_short_or_altered_shard_is_refused_by_name(tmp_path, capsys):
    # The commands in this process (its stdout no terminal, as a subprocess's pipe).
    assert main(["prepare", labelled_npz(tmp_path / "digits.npz"), "--out", tmp_path / "p"]) == 0
    stdout = capsys.readouterr().out
    assert "120/120" in stdout  # the progress bar, to its end
    assert stdout.strip().splitlines()[-1] == (
        f"tfvae prepare: 90 train / 30 test examples of shape (8, 8, 1) (uint8) in 17 shards "
        f"written to {tmp_path / 'p'}; train with --dataset {tmp_path / 'p'}")
    assert main(["prepare", tmp_path / "digits.npz", "--out", tmp_path / "p", "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("tfvae prepare: error: --out:")
    shard = sorted((tmp_path / "p").glob("train-*.tfrecord"))[1]
    content = shard.read_bytes()
    shard.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
    with pytest.raises(InputError, match=f"{shard.name}.*altered or corrupt"):
        data.load_dataset(str(tmp_path / "p"))
    shard.write_bytes(content[:100])
    with pytest.raises(InputError, match=f"{shard.name} of .* bytes.*truncated"):
        data.load_dataset(str(tmp_path / "p"))
    shard.unlink()
    assert main(["train", "--out", tmp_path / "run", "--dataset", tmp_path / "p"]) == 2
    stderr = capsys.readouterr().err
    assert f"{shard.name} missing" in stderr and len(stderr.strip().splitlines()) == 1


def test_storage_is_chosen_by_size_said_first_and_can_be_forced(tmp_path, monkeypatch, capsys):
    folder = image_folder(tmp_path / "images", count=30)
    assert not data.load_dataset(str(folder)).streamed
    monkeypatch.setattr(streams, "STREAM_ABOVE_BYTES", 1000)
    auto = data.load_dataset(str(folder))
    assert auto.streamed and "more than the 1.0 KB above which" in auto.storage
    assert not data.load_dataset(str(folder), storage="memory").streamed
    with pytest.raises(InputError, match="^storage: expected a source that can stream"):
        data.load_dataset("mnist", storage="stream")
    with pytest.raises(InputError, match="^binarize: expected none for a streamed dataset"):
        data.load_dataset(str(folder), binarize="static")
    capsys.readouterr()
    train(tmp_path / "run", data_config={"name": str(folder)}, epochs=1,
          **{**SMALL, "verbose": 2})
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"tfvae: dataset {folder}: streamed from disk (32 image files")
    # reconstruct decodes the images it shows, never the folder; evaluate streams its split.
    monkeypatch.setattr(streams, "STREAM_ABOVE_BYTES", 10 ** 9)  # the folder is small again
    decoded = []
    monkeypatch.setattr(streams, "_decode_image", lambda path, *size, real=streams._decode_image:
                        decoded.append(path) or real(path, *size))
    # The in-memory reader: unused.
    monkeypatch.setattr(data.image_folders, "read_image_folder", None)
    assert main(["reconstruct", tmp_path / "run", "--num", 2, "--out", tmp_path / "r.png"]) == 0
    assert len(decoded) == 2 and all(p.endswith((b"027.png", b"028.png")) for p in decoded)
    capsys.readouterr()
    monkeypatch.setattr(streams, "STREAM_ABOVE_BYTES", 1000)
    assert main(["evaluate", tmp_path / "run"]) == 0
    # The bound, then the active units: each pass reads the 3 test images.
    assert "test elbo:" in capsys.readouterr().out and len(decoded) == 2 + 2 * 3
    assert main(["train", "--out", tmp_path / "cli", "--dataset", "mnist", "--stream"]) == 2
    assert capsys.readouterr().err.startswith(
        "tfvae train: error: --stream: expected a source that can")


class _StopAt(keras.callbacks.Callback):
    """SIGTERM to this process at ``batch`` of ``epoch`` (0-based): a kill mid-epoch."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("source", ["folder", "prepared"])
def test_a_streamed_run_killed_mid_epoch_resumes_into_the_uninterrupted_run(tmp_path, source,
                                                                            monkeypatch):
    monkeypatch.setattr(prepared, "SHARD_BYTES", 3000)
    folder = image_folder(tmp_path / "images", count=80)
    name = str(folder)
    if source == "prepared":
        data.prepare(name, tmp_path / "prepared", verbose=False)
        name = str(tmp_path / "prepared")
    settings = {**SMALL, "data_config": {"name": name, "storage": "stream"}}
    whole = train(tmp_path / "whole", epochs=3, **settings).model
    with pytest.raises(TrainingInterrupted):
        # steps_per_execution 1: the signal lands between two steps of epoch 2.
        train(tmp_path / "part", epochs=3, callbacks=[_StopAt(1, 2)], steps_per_execution=1,
              **settings)
    assert RunDirectory(tmp_path / "part").read_state()["epochs_completed"] == 1
    resumed = train(tmp_path / "part", epochs=3, resume=True, **settings).model
    for u, v in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(u, v, atol=1e-6)
    if source == "folder":  # an indexed stream trains as the arrays in memory do
        held = train(tmp_path / "held", epochs=3,
                     **{**settings, "data_config": {"name": name, "storage": "memory"}}).model
        for u, v in zip(whole.get_weights(), held.get_weights()):
            np.testing.assert_allclose(u, v, atol=1e-5)


def test_two_workers_read_their_own_shards_and_together_every_example(tmp_path, monkeypatch):
    from test_distributed import free_ports

    monkeypatch.setattr(prepared, "SHARD_BYTES", 1000)
    data.prepare(str(labelled_npz(tmp_path / "digits.npz", n_train=96)), tmp_path / "p",
                 verbose=False)
    shards = len(json.loads((tmp_path / "p" / "index.json").read_text())["splits"]["train"][
        "shards"])
    assert shards >= 4
    hosts = [f"127.0.0.1:{port}" for port in free_ports(2)]
    workers = []
    for index in range(2):
        env = {**cli_env(), "TF_CONFIG": json.dumps({"cluster": {"worker": hosts}, "task": {
            "type": "worker", "index": index}})}
        workers.append(subprocess.Popen(
            [sys.executable, str(WORKER), str(tmp_path / "p"), str(tmp_path / f"run{index}"),
             str(tmp_path / f"seen{index}.json")], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    for worker in workers:
        out, _ = worker.communicate(timeout=400)
        assert worker.returncode == 0, out[-3000:]
    seen = [json.loads((tmp_path / f"seen{i}.json").read_text()) for i in range(2)]
    steps = seen[0]["steps"]
    for epoch in range(2):
        parts = [[v for batch in s["batches"][epoch * steps:(epoch + 1) * steps] for v in batch]
                 for s in seen]
        assert not set(parts[0]) & set(parts[1])  # each its own shards
        assert set(parts[0]) | set(parts[1]) == set(range(96))  # together, all
    assert RunDirectory(tmp_path / "run0").read_metrics()[0]["epoch"] == 1


def test_a_tfds_dataset_streams_any_split_expression_from_its_prepared_files(tmp_path, capsys):
    tfds = pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets import testing as tfds_testing

    tfds_testing.DummyMnist(data_dir=str(tmp_path)).download_and_prepare()
    splits = {"data_path": tmp_path, "train_split": "train[:60%]", "test_split": "test[50%:]"}
    held = data.load_dataset("tfds:dummy_mnist", storage="memory", **splits)
    streamed = data.load_dataset("tfds:dummy_mnist", storage="stream", **splits)
    assert data.is_stream(streamed.x_train) and len(streamed.x_train) == 12
    expected = next(tfds.load("dummy_mnist", split="train[:60%]", data_dir=str(tmp_path))
                    .batch(100).as_numpy_iterator())
    np.testing.assert_array_equal(held.y_train, expected["label"])
    for a, b in ((held.x_train, streamed.x_train), (held.x_test, streamed.x_test)):
        np.testing.assert_array_equal(a, np.asarray(b))
    np.testing.assert_array_equal(streamed.y_train, held.y_train)
    # An epoch: every example once with its label, in an order of (seed, epoch) alone.
    epochs = [list(np.concatenate([y for _, y in make_train_stream(
        streamed.x_train, batch_size=5, seed=2, first_epoch=e, labels=streamed.y_train).take(3)]))
        for e in (4, 4, 5)]
    assert sorted(epochs[0]) == sorted(held.y_train) and epochs[0] == epochs[1] != epochs[2]
    with pytest.raises(InputError, match="^train_split: expected no train_split with name="):
        data.load_dataset("mnist", train_split="train[:10%]")
    capsys.readouterr()
    assert main(["train", "--out", tmp_path / "run", "--dataset", "tfds:dummy_mnist",
                 "--data-path", tmp_path, "--train-split", "train[:60%]", "--stream",
                 "--epochs", "1", "--hidden", "8", "--latent-dim", "2"]) == 0
    assert "streamed from disk (32 examples" in capsys.readouterr().out


def test_a_streamed_tfds_dataset_is_prepared_in_its_order(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets import testing as tfds_testing

    tfds_testing.DummyMnist(data_dir=str(tmp_path)).download_and_prepare()
    streamed = data.load_dataset("tfds:dummy_mnist", data_path=tmp_path, storage="stream")
    index = data.prepare("tfds:dummy_mnist", tmp_path / "p", data_path=tmp_path, storage="stream",
                         verbose=False)
    assert index["already_binary"] and index["default_binarize"] == "static"
    back = data.load_dataset(str(tmp_path / "p"), storage="memory")
    for a, b in ((streamed.x_train, back.x_train), (streamed.x_test, back.x_test)):
        np.testing.assert_array_equal(np.asarray(a), b)  # 0 and 1, in the source's order
    np.testing.assert_array_equal(back.y_train, streamed.y_train)


def test_an_image_found_corrupt_as_it_is_streamed_is_one_line_naming_it(tmp_path, capsys):
    folder = image_folder(tmp_path / "images", count=24)
    whole = (folder / "007.png").read_bytes()
    (folder / "007.png").write_bytes(whole[:len(whole) // 2])  # its header intact
    assert main(["train", "--out", tmp_path / "run", "--dataset", folder, "--stream",
                 "--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--batch-size", "8"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"tfvae train: error: '{folder / '007.png'}' is not a readable image")
