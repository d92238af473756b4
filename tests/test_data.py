"""Tests of tfvae.data: the dataset registry, user file formats, validation and pipelines."""

import gzip
import os
import pathlib
import struct
import sys

import numpy as np
import pytest

from tfvae import data
from tfvae.data import sources
from tfvae.errors import InputError

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def reference(filename):
    """The shared copy of a data file, or the packaged one (same sha256) where none is shared."""
    shared = SHARED / filename
    return shared if shared.is_file() else sources.DATA_DIR / filename


@pytest.fixture(scope="module")
def mnist():
    return data.load_dataset("mnist")


@pytest.fixture()
def no_tfds(monkeypatch):
    """Make ``import tensorflow_datasets`` fail, whether or not it is installed."""
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)


def epochs(pipeline, n):
    """``n`` passes over ``pipeline``, each concatenated into one array."""
    return [np.concatenate([batch.numpy() for batch in pipeline]) for _ in range(n)]


# ------------------------------------------------------------------------------- registry


def test_mnist_matches_the_shared_file(mnist):
    assert mnist.x_train.shape == (60000, 28, 28, 1) and mnist.x_test.shape == (10000, 28, 28, 1)
    assert mnist.image_shape == (28, 28, 1)
    assert mnist.x_train.dtype == np.float32
    assert mnist.likelihood == "bernoulli" and mnist.binarize == "dynamic"
    with np.load(reference("mnist.npz")) as f:
        first, y_train, y_test = f["x_train"][0], f["y_train"], f["y_test"]
    np.testing.assert_array_equal(mnist.x_train[0, :, :, 0], first.astype(np.float32) / 255)
    np.testing.assert_array_equal(mnist.y_train, y_train)
    np.testing.assert_array_equal(mnist.y_test, y_test)
    assert 0 <= mnist.x_train.min() and mnist.x_train.max() == 1
    # dynamic: train keeps grey levels, test is binarized once
    assert len(np.unique(mnist.x_train[:10])) > 2
    assert set(np.unique(mnist.x_test)) == {0.0, 1.0}


def test_static_binarization_is_binary_seeded_and_mean_preserving(mnist):
    static = data.load_dataset(
        "mnist", binarize="static", train_examples=2000, test_examples=500, seed=3
    )
    assert static.binarize == "static"
    assert static.x_train.shape == (2000, 28, 28, 1) and static.x_test.shape == (500, 28, 28, 1)
    assert set(np.unique(static.x_train)) == {0.0, 1.0}
    assert abs(static.x_train.mean() - mnist.x_train[:2000].mean()) < 0.003
    np.testing.assert_array_equal(static.y_train, mnist.y_train[:2000])
    # The binary test set depends on the seed only, not on the mode or on subsetting.
    dynamic = data.load_dataset("mnist", test_examples=500, seed=3)
    np.testing.assert_array_equal(static.x_test, dynamic.x_test)
    other = data.load_dataset("mnist", binarize="static", train_examples=10, seed=4)
    assert not np.array_equal(static.x_train[:10], other.x_train)


def test_binarize_none_keeps_grey_levels(mnist):
    grey = data.load_dataset("mnist", binarize="none", train_examples=5, test_examples=7)
    assert grey.binarize == "none"
    np.testing.assert_array_equal(grey.x_train, mnist.x_train[:5])
    assert grey.x_test.shape == (7, 28, 28, 1) and len(np.unique(grey.x_test)) > 2


def test_frey_face_split():
    frey = data.load_dataset("frey_face")
    assert frey.x_train.shape == (1772, 28, 20, 1) and frey.x_test.shape == (193, 28, 20, 1)
    assert frey.likelihood == "gaussian" and frey.binarize == "none"
    assert frey.y_train is None and frey.y_test is None
    import scipy.io

    ff = scipy.io.loadmat(reference("frey_rawface.mat"))["ff"]
    every = [ff[:, i].reshape(28, 20).astype(np.float32) / 255 for i in range(ff.shape[1])]
    split = list(frey.x_train[..., 0]) + list(frey.x_test[..., 0])
    # train + test is exactly the 1,965 faces, each once: a partition of the file
    assert sorted(a.tobytes() for a in split) == sorted(a.tobytes() for a in every)
    # the split does not depend on the seed
    np.testing.assert_array_equal(data.load_dataset("frey_face", seed=7).x_test, frey.x_test)


@pytest.mark.skipif(not (SHARED / "binarized_mnist.npz").is_file(), reason="no shared file")
def test_binarized_mnist_from_data_path():
    ds = data.load_dataset("binarized_mnist", data_path=SHARED / "binarized_mnist.npz")
    assert ds.x_train.shape == (50000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.binarize == "static" and ds.likelihood == "bernoulli"
    with np.load(SHARED / "binarized_mnist.npz") as f:
        first_test = f["test"][0]
    np.testing.assert_array_equal(ds.x_test[0].ravel(), first_test)


def test_binarized_mnist_from_env(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    splits = {k: rng.integers(0, 2, (n, 784), dtype=np.uint8) for k, n in
              [("train", 6), ("valid", 2), ("test", 3)]}
    np.savez(tmp_path / "bm.npz", **splits)
    monkeypatch.setenv("TFVAE_BINARIZED_MNIST", str(tmp_path / "bm.npz"))
    ds = data.load_dataset("binarized_mnist", binarize="none")
    assert ds.binarize == "static"
    np.testing.assert_array_equal(ds.x_train.reshape(6, 784), splits["train"])
    np.testing.assert_array_equal(ds.x_test.reshape(3, 784), splits["test"])
    with pytest.raises(InputError, match="^binarize: expected"):
        data.load_dataset("binarized_mnist", binarize="dynamic")


def test_binarized_mnist_without_a_source(monkeypatch, no_tfds):
    monkeypatch.delenv("TFVAE_BINARIZED_MNIST", raising=False)
    with pytest.raises(InputError, match="TFVAE_BINARIZED_MNIST") as err:
        data.load_dataset("binarized_mnist")
    assert err.value.argument == "data_path"


def test_tfds_missing(no_tfds):
    with pytest.raises(InputError, match="pip install tensorflow-datasets"):
        data.load_dataset("tfds:mnist")


def test_tfds_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=8):
        ds = data.load_dataset("tfds:mnist")
    assert ds.x_train.shape[1:] == (28, 28, 1) and ds.x_train.dtype == np.float32
    assert 0 <= ds.x_train.min() and ds.x_train.max() <= 1 and ds.y_train is not None


def test_tfds_reads_a_dataset_prepared_in_a_local_data_dir(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets import testing as tfds_testing

    # A real TFDS builder, prepared without a network, then read back by its name.
    tfds_testing.DummyMnist(data_dir=str(tmp_path)).download_and_prepare()
    ds = data.load_dataset("tfds:dummy_mnist", data_path=tmp_path)
    split = tfds.load("dummy_mnist", split="train", data_dir=str(tmp_path))
    prepared = next(split.batch(100).as_numpy_iterator())
    assert ds.x_train.shape == (20, 28, 28, 1) and len(ds.x_test) == 20
    expected = data.validate_images(prepared["image"], argument="x", bernoulli=True)
    np.testing.assert_array_equal(ds.x_train, expected)
    np.testing.assert_array_equal(ds.y_train, prepared["label"])


def test_tfds_failures_are_one_line_with_a_way_out(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(InputError, match="list_builders") as err:
        data.load_dataset("tfds:no_such_dataset_anywhere")
    assert "\n" not in str(err.value)
    # Not prepared in the data_dir given (nothing is downloaded then): say how to go on.
    with pytest.raises(InputError, match="name='FILE.npz'") as err:
        data.load_dataset("tfds:mnist", data_path=tmp_path)
    assert "\n" not in str(err.value) and len(str(err.value)) < 800


def test_corrupted_embedded_file(monkeypatch):
    monkeypatch.setitem(data.sources._EMBEDDED, "mnist", ("mnist.npz", "0" * 64))
    with pytest.raises(InputError, match="sha256") as err:
        data.load_dataset("mnist")
    assert str(err.value).startswith("name='mnist': ") and "corrupted" in str(err.value)


# ----------------------------------------------------------------------------- user files


def test_npz_with_train_and_test(tmp_path):
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, (5, 6, 6), dtype=np.uint8)
    x_test = rng.random((2, 6, 6, 3))
    np.savez(tmp_path / "d.npz", x_train=x_train, x_test=x_test[..., :1], y_train=np.arange(5))
    ds = data.load_dataset(str(tmp_path / "d.npz"))
    np.testing.assert_array_equal(ds.x_train[..., 0], x_train.astype(np.float32) / 255)
    np.testing.assert_allclose(ds.x_test, x_test[..., :1].astype(np.float32))
    np.testing.assert_array_equal(ds.y_train, np.arange(5))
    assert ds.y_test is None and ds.binarize == "none" and ds.likelihood == "bernoulli"


def test_npz_with_x_splits_last_tenth(tmp_path):
    x = np.random.default_rng(2).random((20, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(20))
    ds = data.load_dataset(tmp_path / "d.npz")
    np.testing.assert_array_equal(ds.x_train[..., 0], x[:18])
    np.testing.assert_array_equal(ds.x_test[..., 0], x[18:])
    np.testing.assert_array_equal(ds.y_test, [18, 19])


def test_npy_flat_square(tmp_path):
    x = np.random.default_rng(3).random((10, 16))
    np.save(tmp_path / "d.npy", x)
    ds = data.load_dataset(str(tmp_path / "d.npy"), binarize="static")
    assert ds.x_train.shape == (9, 4, 4, 1) and ds.x_test.shape == (1, 4, 4, 1)
    assert set(np.unique(ds.x_train)) <= {0.0, 1.0}


def test_binary_integers_are_not_rescaled(tmp_path):
    x = np.random.default_rng(4).integers(0, 2, (10, 3, 3), dtype=np.uint8)
    np.save(tmp_path / "b.npy", x)
    ds = data.load_dataset(str(tmp_path / "b.npy"))
    np.testing.assert_array_equal(ds.x_train[..., 0], x[:9])


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_with_labels(tmp_path, suffix):
    images = np.random.default_rng(5).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    labels = np.arange(10) % 10
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels)
    ds = data.load_dataset(str(tmp_path / f"train-images-idx3-ubyte{suffix}"))
    np.testing.assert_array_equal(ds.x_train[..., 0], images[:9].astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.x_test[..., 0], images[9:].astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.y_train, labels[:9])


@pytest.mark.parametrize("channels", [1, 3])
def test_image_folder(tmp_path, channels):
    from PIL import Image

    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, (10, 5, 7, channels), dtype=np.uint8)
    for i, img in enumerate(images):
        Image.fromarray(img.squeeze(-1) if channels == 1 else img).save(tmp_path / f"{i:02d}.png")
    (tmp_path / "README.txt").write_text("not an image")
    ds = data.load_dataset(str(tmp_path))
    assert ds.image_shape == (5, 7, channels)
    np.testing.assert_array_equal(ds.x_train, images[:9].astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.x_test, images[9:].astype(np.float32) / 255)


# ----------------------------------------------------------------------------- bad inputs


def bad_array_file(tmp_path, array):
    np.save(tmp_path / "bad.npy", array)
    return str(tmp_path / "bad.npy")


@pytest.mark.parametrize(
    "make_args,argument",
    [
        (lambda p: {"name": "not_a_dataset"}, "name"),
        (lambda p: {"name": str(p / "missing.npz")}, "name"),
        (lambda p: {"name": bad_array_file(p, np.zeros(5))}, "name"),
        (lambda p: {"name": bad_array_file(p, np.zeros((2, 2, 2, 2, 2)))}, "name"),
        (lambda p: {"name": bad_array_file(p, np.zeros((4, 0)))}, "name"),
        (lambda p: {"name": bad_array_file(p, np.array([[[0.5, np.nan]]] * 3))}, "name"),
        (lambda p: {"name": bad_array_file(p, np.array([[[0.5, np.inf]]] * 3))}, "name"),
        (lambda p: {"name": bad_array_file(p, np.array([[[0.5, 1.5]]] * 3)), "binarize": "static"},
         "binarize"),
        (lambda p: {"name": bad_array_file(p, np.array([[["a", "b"]]]))}, "name"),
        (lambda p: {"train_examples": 0}, "train_examples"),
        (lambda p: {"test_examples": -3}, "test_examples"),
        (lambda p: {"binarize": "sometimes"}, "binarize"),
        (lambda p: {"name": "frey_face", "binarize": "static"}, "binarize"),
        (lambda p: {"name": "mnist", "data_path": "x.npz"}, "data_path"),
        (lambda p: {"seed": -1}, "seed"),
        (lambda p: {"image_size": (0, 64)}, "image_size"),
        (lambda p: {"image_size": (64,)}, "image_size"),
        (lambda p: {"image_size": (64, 64, 3)}, "image_size"),
        (lambda p: {"image_size": (64.0, 64)}, "image_size"),
        (lambda p: {"image_size": (True, 64)}, "image_size"),
        (lambda p: {"image_size": "64 64"}, "image_size"),
        (lambda p: {"image_size": 64}, "image_size"),
    ],
)
def test_bad_input_names_its_argument(tmp_path, make_args, argument):
    with pytest.raises(InputError) as err:
        data.load_dataset(**make_args(tmp_path))
    message = str(err.value)  # the argument alone, or with its value (name='bad.npy')
    assert message.startswith((f"{argument}: ", f"{argument}=")) and ": expected " in message


def test_bad_values_are_described(tmp_path):
    with pytest.raises(InputError, match=r"3 NaN and 0 infinite"):
        data.load_dataset(bad_array_file(tmp_path, np.array([[[0.5, np.nan]]] * 3)))
    # Values outside [0, 1] are data for a Gaussian, and refused where a Bernoulli needs [0, 1].
    outside = data.load_dataset(bad_array_file(tmp_path, np.array([[[0.5, 1.5]]] * 3)))
    assert outside.likelihood == "normal" and outside.binarize == "none"
    with pytest.raises(InputError, match=r"values in \[0, 1\].*got values in \[0.5, 1.5\]"):
        data.validate_examples(np.array([[[0.5, 1.5]]] * 3), argument="x",
                               support="unit_interval")


def test_unreadable_file(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="junk.npz") as err:
        data.load_dataset(str(tmp_path / "junk.npz"))
    assert err.value.argument == "name"


def test_folder_with_mixed_sizes_names_the_file(tmp_path):
    from PIL import Image

    for name, size in [("a.png", (4, 4)), ("b.png", (4, 4)), ("c.png", (5, 4))]:
        Image.new("L", size).save(tmp_path / name)
    with pytest.raises(InputError, match="c.png") as err:
        data.load_dataset(str(tmp_path))
    assert str(err.value).startswith(f"name={str(tmp_path)!r}: ")
    assert "4x4 as in a.png" in str(err.value) and "image_size='H W'" in str(err.value)
    assert err.value.got == "4x5 in c.png"


def write_mixed_folder(folder):
    """Colour and grey images of several sizes, and a corrupt PNG; returns their colours in
    file-name order (RGB, grey repeated), the corrupt file left out."""
    from PIL import Image

    # Half red, half blue across the width: shows that H and W are not swapped.
    left_right = np.zeros((10, 20, 3), np.uint8)
    left_right[:, :10, 0], left_right[:, 10:, 2] = 255, 255
    Image.fromarray(left_right).save(folder / "a.png")
    Image.new("L", (7, 9), 128).save(folder / "b.jpg", quality=100)
    (folder / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    Image.new("RGB", (30, 33), (10, 200, 30)).save(folder / "d.png")
    Image.new("LA", (5, 5), (77, 255)).save(folder / "e.png")
    Image.new("RGB", (64, 48), (250, 5, 60)).save(folder / "f.png")
    return [None, (128,) * 3, (10, 200, 30), (77,) * 3, (250, 5, 60)]


def test_image_folder_of_mixed_sizes_in_colour_and_grey_is_resized(tmp_path, capsys):
    colours = write_mixed_folder(tmp_path)
    ds = data.load_dataset(str(tmp_path), image_size=(8, 12))
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "c.png" in warning[0] and "1 of 6" in warning[0], warning
    x = np.concatenate([ds.x_train, ds.x_test])
    # Any colour image makes the folder colour: grey images come in three equal channels.
    assert x.shape == (5, 8, 12, 3) and ds.x_test.shape == (1, 8, 12, 3)
    np.testing.assert_array_equal(x[0, :, 0], np.tile([1, 0, 0], (8, 1)))
    np.testing.assert_array_equal(x[0, :, -1], np.tile([0, 0, 1], (8, 1)))
    for image, colour in zip(x[1:], colours[1:]):
        np.testing.assert_allclose(image, np.broadcast_to(np.float32(colour) / 255, image.shape),
                                   atol=1 / 255)


def test_grey_folder_stays_one_channel_when_resized(tmp_path):
    from PIL import Image

    for i, size in enumerate([(6, 4), (9, 9), (4, 4)]):
        Image.new("L", size, 40 * i).save(tmp_path / f"{i}.png")
    ds = data.load_dataset(str(tmp_path), image_size=[4, 4])
    assert ds.image_shape == (4, 4, 1)
    np.testing.assert_array_equal(ds.x_train[:, 0, 0, 0], np.float32([0, 40]) / 255)


def test_a_resized_array_of_8_bit_levels_stays_on_them_and_another_does_not(tmp_path):
    from tfvae.data.image_folders import resize

    rng = np.random.default_rng(0)
    levels = rng.integers(0, 256, (3, 8, 8, 2)).astype(np.float32) / 255
    np.savez(tmp_path / "u8.npz", x_train=(levels * 255).astype(np.uint8),
             x_test=(levels[:1] * 255).astype(np.uint8))
    x = data.load_dataset(str(tmp_path / "u8.npz"), image_size=[6, 5]).x_train
    assert x.shape == (3, 6, 5, 2)
    np.testing.assert_array_equal(x * 255, np.round(x * 255))
    # The bilinear filter's values, put on the nearest level: within half a level of them.
    floats = levels + np.float32(0.3 / 255)
    stretched = resize(floats, (6, 5))
    assert not np.array_equal(stretched * 255, np.round(stretched * 255))
    np.testing.assert_allclose(x, stretched - np.float32(0.3 / 255), atol=0.5 / 255 + 1e-6)


def test_sixteen_bit_grey_png_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    levels = np.array([[0, 257 * 100], [257 * 200, 65535]], np.uint16)
    for i in range(2):
        Image.fromarray(levels).save(tmp_path / f"{i}.png")
    assert Image.open(tmp_path / "0.png").mode.startswith("I;16")
    ds = data.load_dataset(str(tmp_path))
    np.testing.assert_array_equal(ds.x_train[0, ..., 0], np.float32([[0, 100], [200, 255]]) / 255)


def test_image_folder_with_no_readable_image(tmp_path):
    for name in ("a.png", "b.jpg"):
        (tmp_path / name).write_bytes(b"not an image")
    with pytest.raises(InputError, match="none of its 2 image files readable") as err:
        data.load_dataset(str(tmp_path), image_size=(4, 4))
    assert str(err.value).startswith(f"name={str(tmp_path)!r}: ") and "a.png, b.jpg" in err.value.got


def test_image_size_resizes_arrays_and_keeps_their_range(tmp_path):
    x = np.zeros((10, 8, 8), np.uint8)
    x[:, :, 4:] = 255  # dark left half, bright right half
    np.save(tmp_path / "x.npy", x)
    ds = data.load_dataset(str(tmp_path / "x.npy"), image_size=(4, 6))
    assert ds.image_shape == (4, 6, 1)
    np.testing.assert_array_equal(ds.x_train[:, :, 0], 0.0)
    np.testing.assert_array_equal(ds.x_train[:, :, -1], 1.0)
    assert ds.x_train.min() >= 0 and ds.x_train.max() <= 1
    same = data.load_dataset(str(tmp_path / "x.npy"), image_size=(8, 8))
    np.testing.assert_array_equal(same.x_train[..., 0], x[:9] / 255)


def test_image_size_refuses_already_binary_data(tmp_path):
    rng = np.random.default_rng(0)
    splits = {k: rng.integers(0, 2, (n, 784), dtype=np.uint8)
              for k, n in (("train", 5), ("valid", 2), ("test", 3))}
    np.savez(tmp_path / "b.npz", **splits)
    with pytest.raises(InputError, match="already binary") as err:
        data.load_dataset("binarized_mnist", data_path=str(tmp_path / "b.npz"), image_size=(14, 14))
    assert err.value.argument == "image_size"


def test_validate_images_directly():
    out = data.validate_images(np.full((2, 3, 3), 1.5), argument="x", bernoulli=False)
    assert out.shape == (2, 3, 3, 1) and out.dtype == np.float32
    with pytest.raises(InputError, match="^x_train: expected"):
        data.validate_images(np.full((2, 3, 3), 1.5), argument="x_train", bernoulli=True)
    with pytest.raises(InputError, match="grey levels in \\[0, 255\\]"):
        data.validate_images(np.full((2, 3, 3), 300), argument="x", bernoulli=False)


# ------------------------------------------------------------------------------ pipelines


def test_pipeline_batches_in_order():
    x = np.arange(10 * 2 * 2, dtype=np.float32).reshape(10, 2, 2, 1) / 40
    sizes = [b.shape[0] for b in data.make_pipeline(x, batch_size=4)]
    assert sizes == [4, 4, 2]
    assert [b.shape[0] for b in data.make_pipeline(x, batch_size=4, drop_remainder=True)] == [4, 4]
    (first,) = epochs(data.make_pipeline(x, batch_size=4), 1)
    np.testing.assert_array_equal(first, x)


def test_pipeline_shuffle_is_a_fresh_seeded_permutation_per_epoch():
    x = np.arange(64, dtype=np.float32).reshape(64, 1, 1, 1) / 64
    one, two = epochs(data.make_pipeline(x, batch_size=8, shuffle=True, seed=5), 2)
    assert sorted(one.ravel()) == sorted(x.ravel()) and not np.array_equal(one, two)
    again = epochs(data.make_pipeline(x, batch_size=8, shuffle=True, seed=5), 2)
    np.testing.assert_array_equal(again[0], one)
    np.testing.assert_array_equal(again[1], two)


def test_dynamic_binarization_is_fresh_each_epoch_and_unbiased():
    grey = np.linspace(0, 1, 16, dtype=np.float32).reshape(1, 4, 4, 1)
    x = np.repeat(grey, 500, axis=0)
    pipeline = data.make_pipeline(x, batch_size=128, dynamic_binarize=True, seed=1)
    one, two = epochs(pipeline, 2)
    assert set(np.unique(one)) == {0.0, 1.0} and not np.array_equal(one, two)
    # 500 draws per pixel: the per-pixel mean is within 0.1 (> 4.5 sd) of its grey level
    assert np.abs(one.mean(axis=0) - grey[0]).max() < 0.1
    again = epochs(data.make_pipeline(x, batch_size=128, dynamic_binarize=True, seed=1), 2)
    np.testing.assert_array_equal(again[1], two)
    other = epochs(data.make_pipeline(x, batch_size=128, dynamic_binarize=True, seed=2), 1)
    assert not np.array_equal(other[0], one)


def test_pipeline_rejects_bad_arguments():
    x = np.zeros((4, 2, 2, 1), np.float32)
    with pytest.raises(InputError, match="^batch_size: expected"):
        data.make_pipeline(x, batch_size=0)
    with pytest.raises(InputError, match="^x: expected"):
        data.make_pipeline(x + 2, batch_size=2, dynamic_binarize=True)


def test_registry_names():
    assert data.DATASETS == ("mnist", "binarized_mnist", "frey_face")
    with pytest.raises(InputError, match="mnist, binarized_mnist, frey_face"):
        data.load_dataset("cifar")
    assert os.path.isfile(sources.DATA_DIR / "SOURCES.md")
