"""The dataset registry: named datasets, TFDS datasets and user files, as train and test splits.

``load_dataset(name)`` returns a :class:`Dataset` whose images are float32 ``[N, H, W, C]`` in
``[0, 1]`` (``C = 1`` for grey images). ``name`` is one of:

=====================  ===============================================  ==========  ===========
name                   source                                           likelihood  binarize
=====================  ===============================================  ==========  ===========
``"mnist"``            embedded ``tfvae/data/packaged/mnist.npz`` (60,000    bernoulli   ``dynamic``
                       train / 10,000 test, labels), sha256-checked
``"binarized_mnist"``  Larochelle & Murray's static binarization:       bernoulli   ``static``
                       ``data_path``, else ``$TFVAE_BINARIZED_MNIST``,              (fixed)
                       else ``tensorflow_datasets``; 50,000 train (the
                       ``valid`` split is not used) / 10,000 test
``"frey_face"``        embedded ``tfvae/data/packaged/frey_rawface.mat``     gaussian    ``none``
                       (1,965 faces 28x20), sha256-checked, a fixed                 (fixed)
                       1,772 / 193 split
``"tfds:<name>"``      ``tensorflow_datasets`` (optional dependency),   bernoulli   ``none``
                       its ``train`` and ``test`` splits
a path                 ``.npz``, ``.npy``, an IDX file (optionally      bernoulli   ``none``
                       ``.gz``) or a folder of PNG/JPEG/BMP images
                       (:func:`tfvae.data.files.read_image_folder`)
=====================  ===============================================  ==========  ===========

Binarization (``binarize=``):

- ``"dynamic"``: ``x_train`` keeps its grey levels and the training pipeline draws a fresh
  Bernoulli sample per pixel each epoch (``make_pipeline(..., dynamic_binarize=True)``);
  ``x_test`` is binarized once, so the test bound is computed on one fixed binary set.
- ``"static"``: both splits are binarized once.
- ``"none"``: grey levels are kept.

The one-off binarizations draw from ``numpy.random.default_rng`` streams spawned from ``seed``
(one per split), so a given seed gives the same binary test set under "dynamic" and "static".

User files: integer data is read as grey levels 0..255 and scaled by 1/255, except integer data
holding only 0 and 1, which is taken as already binary; float data is kept as it is and must lie
in [0, 1]. Arrays may be ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, D]`` with ``D`` a perfect
square. Where a file gives no train/test split, the last 10% (at least one example) is the test
split. Every bad input raises :class:`tfvae.errors.InputError`.
"""

import dataclasses
import hashlib
import os
import pathlib

import numpy as np

from tfvae.checks import check_choice, check_image_size, check_int, check_seed
import tfvae.data.files as files
from tfvae.data.pipelines import binarize as bernoulli_sample
from tfvae.data.validation import validate_images
from tfvae.errors import InputError
from tfvae.options import BINARIZE_MODES, DATASETS

# Where the packaged dataset files are.
DATA_DIR = pathlib.Path(__file__).parent / "packaged"
# name -> (packaged file, sha256 from tfvae/data/packaged/SOURCES.md)
_EMBEDDED = {
    "mnist": ("mnist.npz", "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"),
    "frey_face": (
        "frey_rawface.mat",
        "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64",
    ),
}
_FREY_SHAPE = (28, 20)
_FREY_TRAIN = 1772
_BINARIZED_MNIST_ENV = "TFVAE_BINARIZED_MNIST"
_PATH_SUFFIXES = (".npz", ".npy", ".gz", "ubyte")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Train and test images, float32 ``[N, H, W, C]`` in ``[0, 1]``, with what was applied.

    ``likelihood`` is the suggested decoder ("bernoulli" or "gaussian"); ``binarize`` is the
    binarization applied ("dynamic", "static" or "none"); under "dynamic" pass
    ``dynamic_binarize=True`` to :func:`make_pipeline` for the training split.
    """

    name: str
    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray | None
    y_test: np.ndarray | None
    likelihood: str
    binarize: str

    @property
    def image_shape(self):
        """``(H, W, C)`` of one image."""
        return tuple(self.x_train.shape[1:])

    def checksum(self):
        """sha256 of the examples and labels as the model sees them: the same data read from
        another place, or another format, has the same checksum."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.x_test, self.y_train, self.y_test):
            if array is not None:
                array = np.ascontiguousarray(array)
                digest.update(f"{array.dtype.str}{array.shape}".encode())
                digest.update(memoryview(array).cast("B"))
        return digest.hexdigest()

    def __repr__(self):
        # Arrays are large: show shapes, not values.
        return (
            f"Dataset(name={self.name!r}, x_train={self.x_train.shape}, "
            f"x_test={self.x_test.shape}, labels={self.y_train is not None}, "
            f"likelihood={self.likelihood!r}, binarize={self.binarize!r})"
        )


@dataclasses.dataclass
class _Raw:
    """A source's splits before binarization, and the binarize modes it allows."""

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray | None
    y_test: np.ndarray | None
    likelihood: str = "bernoulli"
    default_binarize: str = "none"
    allowed_binarize: tuple = BINARIZE_MODES
    already_binary: bool = False


# ----------------------------------------------------------------------------- public API


def load_dataset(
    name="mnist",
    *,
    binarize=None,
    data_path=None,
    train_examples=None,
    test_examples=None,
    seed=0,
    image_size=None,
):
    """Load a registered dataset, a ``tfds:<name>`` dataset or a user file as a :class:`Dataset`.

    ``binarize`` is None (the dataset's default) or one of "dynamic", "static", "none".
    ``data_path`` locates data that is not embedded: the binarized MNIST ``.npz``, or the TFDS
    ``data_dir``. ``train_examples``/``test_examples`` keep the first N examples of each split,
    after binarization, so a subset is a prefix of the full set. ``seed`` drives binarization.
    ``image_size`` ``[H, W]`` resizes every image (a folder's as each file is read), before
    binarization.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str) or not name:
        raise InputError("--dataset", "a dataset name or path", repr(name))
    train_examples = check_int("--train-examples", train_examples, optional=True)
    test_examples = check_int("--test-examples", test_examples, optional=True)
    check_seed("--seed", seed)
    image_size = check_image_size("--image-size", image_size, optional=True)
    if binarize is not None:
        check_choice("--binarize", binarize, BINARIZE_MODES)

    raw = _resized(_load_raw(name, data_path, image_size), image_size, name)
    mode = _resolve_binarize(name, binarize, raw)
    x_train, x_test = _apply_binarize(mode, raw.x_train, raw.x_test, seed)
    if raw.already_binary:
        mode = "static"
    return Dataset(
        name=name,
        x_train=x_train[:train_examples],
        x_test=x_test[:test_examples],
        y_train=None if raw.y_train is None else raw.y_train[:train_examples],
        y_test=None if raw.y_test is None else raw.y_test[:test_examples],
        likelihood=raw.likelihood,
        binarize=mode,
    )


# ------------------------------------------------------------------------------ binarization


def _resolve_binarize(name, binarize, raw):
    mode = raw.default_binarize if binarize is None else binarize
    if mode not in raw.allowed_binarize:
        why = "already binary" if raw.already_binary else "continuous data"
        raise InputError(
            "--binarize",
            f"one of {', '.join(raw.allowed_binarize)} for {name} ({why})",
            repr(binarize),
        )
    return mode


def _apply_binarize(mode, x_train, x_test, seed):
    rng_train, rng_test = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    if mode == "static":
        x_train = bernoulli_sample(x_train, rng_train)
    if mode in ("static", "dynamic"):
        x_test = bernoulli_sample(x_test, rng_test)
    return x_train, x_test


# ----------------------------------------------------------------------------------- sources


def _resized(raw, image_size, name):
    """``raw`` with its images resized to ``image_size`` (a no-op where they have that size)."""
    if image_size is None or list(raw.x_train.shape[1:3]) == image_size:
        return raw
    if raw.already_binary:  # resizing would make grey levels of its 0/1 pixels
        raise InputError("--image-size", f"no resizing of {name}, which is already binary "
                         "(resize it before binarizing)", repr(image_size))
    raw.x_train, raw.x_test = (files.resize(x, image_size) for x in (raw.x_train, raw.x_test))
    return raw


def _load_raw(name, data_path, image_size):
    if data_path is not None and name not in ("binarized_mnist",) and not name.startswith("tfds:"):
        expected = f"no --data-path with --dataset {name} (only binarized_mnist, tfds:<name>)"
        raise InputError("--data-path", expected, repr(os.fspath(data_path)))
    if name == "mnist":
        return _load_mnist()
    if name == "binarized_mnist":
        return _load_binarized_mnist(data_path)
    if name == "frey_face":
        return _load_frey_face()
    if name.startswith("tfds:"):
        return _load_tfds(name[len("tfds:"):], data_path)
    if looks_like_path(name):
        return _load_path(pathlib.Path(name), image_size)
    raise InputError(
        "--dataset",
        f"one of {', '.join(DATASETS)}, tfds:<name>, or a path to {files.FILE_EXPECTED[3:]}",
        repr(name),
    )


def looks_like_path(name):
    """Whether a ``--dataset`` value names a file or folder rather than a registered dataset."""
    return os.path.exists(name) or name.endswith(_PATH_SUFFIXES) or os.sep in name or "/" in name


def _embedded_file(name):
    """The packaged file of ``name``, after checking its sha256."""
    filename, expected = _EMBEDDED[name]
    path = DATA_DIR / filename
    if not path.is_file():
        got = "no such file (reinstall tfvae)"
        raise InputError(f"--dataset {name}", f"the packaged file {path}", got)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise InputError(
            f"--dataset {name}",
            f"{path} with sha256 {expected}",
            f"sha256 {digest} (the packaged file is corrupted or modified; reinstall tfvae)",
        )
    return path


def _load_mnist():
    with np.load(_embedded_file("mnist"), allow_pickle=False) as f:
        arrays = {key: f[key] for key in ("x_train", "x_test", "y_train", "y_test")}
    raw = _from_splits(arrays, "x_train", "x_test", "--dataset mnist")
    raw.y_train, raw.y_test = _labels(arrays["y_train"]), _labels(arrays["y_test"])
    raw.default_binarize = "dynamic"
    return raw


def _load_frey_face():
    import scipy.io  # only this dataset needs scipy

    ff = scipy.io.loadmat(_embedded_file("frey_face"))["ff"]  # uint8 [560, 1965], column = image
    images = validate_images(
        ff.T.reshape(-1, *_FREY_SHAPE), argument="--dataset frey_face", bernoulli=False
    )
    # A fixed permutation (independent of `seed`), so every run reports on the same test faces.
    order = np.random.default_rng(0).permutation(len(images))
    return _Raw(
        x_train=images[order[:_FREY_TRAIN]],
        x_test=images[order[_FREY_TRAIN:]],
        y_train=None,
        y_test=None,
        likelihood="gaussian",
        allowed_binarize=("none",),
    )


def _load_binarized_mnist(data_path):
    if data_path is not None:
        return _read_binarized_npz(pathlib.Path(data_path), "--data-path")
    env_path = os.environ.get(_BINARIZED_MNIST_ENV)
    if env_path:
        return _read_binarized_npz(pathlib.Path(env_path), _BINARIZED_MNIST_ENV)
    try:
        raw = _load_tfds("binarized_mnist", None)
    except InputError as exc:
        raise InputError(
            "--data-path",
            "the binarized MNIST .npz (keys train, valid, test): pass --data-path FILE or set "
            f"{_BINARIZED_MNIST_ENV}=FILE",
            f"neither, and tensorflow-datasets could not provide it ({exc})",
        ) from exc
    return _as_binary(raw, "--dataset binarized_mnist")


def _read_binarized_npz(path, argument):
    expected = "an .npz with keys train, valid, test of 0/1 uint8 [N, 784]"
    arrays = files.read_npz(path, argument, expected)
    if not {"train", "test"} <= arrays.keys():
        raise InputError(argument, expected, f"{str(path)!r} with keys {sorted(arrays)}")
    return _as_binary(_from_splits(arrays, "train", "test", argument), argument)


def _as_binary(raw, argument):
    """Mark ``raw`` as already binary, after checking it holds only 0 and 1."""
    for split in (raw.x_train, raw.x_test):
        if not np.isin(split, (0.0, 1.0)).all():
            raise InputError(argument, "binary images (values 0 and 1 only)", "grey levels")
    raw.allowed_binarize = ("static", "none")
    raw.default_binarize = "static"
    raw.already_binary = True
    return raw


def _load_tfds(tfds_name, data_dir):
    argument = f"--dataset tfds:{tfds_name}"
    try:
        import tensorflow_datasets as tfds  # optional: only tfds:<name> needs it
    except ImportError as exc:
        raise InputError(argument, "tensorflow-datasets installed (pip install "
                         "tensorflow-datasets, or tfvae[tfds])", f"ImportError: {exc}") from exc
    try:
        tfds.builder(tfds_name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as exc:
        raise InputError(argument, "the name of a TFDS dataset (tfds.list_builders() lists "
                         "them)", f"{tfds_name!r}, which TFDS does not know") from exc
    try:
        train, test = (
            _tfds_arrays(split)
            # A data_dir given is where the dataset was prepared: read it, download nothing.
            for split in tfds.load(tfds_name, split=["train", "test"], data_dir=data_dir,
                                   download=data_dir is None)
        )
    except Exception as exc:  # tfds raises many types (download, missing split, bad data_dir)
        # TFDS's messages run to many lines: the first says what happened.
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(
            argument,
            "a TFDS dataset with train and test splits, prepared in --data-path DIR (a TFDS "
            "data_dir) or downloadable from here; without a network, give a local file "
            "instead (--dataset FILE.npz with x_train and x_test)",
            f"{type(exc).__name__}: {first_line[:300]}",
        ) from exc
    if "image" not in train:
        got = f"features {sorted(train)}"
        raise InputError(f"--dataset tfds:{tfds_name}", "an 'image' feature", got)
    arrays = {"train": train["image"], "test": test["image"]}
    raw = _from_splits(arrays, "train", "test", f"--dataset tfds:{tfds_name}")
    raw.y_train, raw.y_test = _labels(train.get("label")), _labels(test.get("label"))
    return raw


def _tfds_arrays(split):
    """A TFDS split as a dict of numpy arrays.

    Batched by a bounded size and concatenated: ``batch_size=-1`` aborts the process under
    TensorFlow 2.21 (std::length_error from a reserve of the maximal batch).
    """
    batches = list(split.batch(4096).as_numpy_iterator())
    return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}


def _from_splits(arrays, train_key, test_key, argument):
    """A label-less ``_Raw`` from two arrays of ``arrays``, validated for a Bernoulli decoder."""
    x_train, x_test = (
        validate_images(arrays[key], argument=f"{argument} ({key})", bernoulli=True)
        for key in (train_key, test_key)
    )
    return _Raw(x_train=x_train, x_test=x_test, y_train=None, y_test=None)


def _labels(y):
    return None if y is None else np.asarray(y).astype(np.int64)


# -------------------------------------------------------------------------------- user files


def _load_path(path, image_size):
    argument = f"--dataset {path}"
    if path.is_dir():
        folder = files.read_image_folder(path, "--dataset", image_size)
        return _split_last(folder, None, argument)
    if not path.is_file():
        raise InputError("--dataset", files.FILE_EXPECTED, repr(str(path)))
    if path.suffix == ".npz":
        return _from_npz(path, argument)
    if path.suffix == ".npy":
        return _split_last(files.read_npy(path, "--dataset"), None, argument)
    images = files.read_idx(path, "--dataset")
    return _split_last(images, files.idx_labels(path, len(images)), argument)


def _from_npz(path, argument):
    arrays = files.read_npz(path, "--dataset")
    y_train, y_test = _labels(arrays.get("y_train")), _labels(arrays.get("y_test"))
    if {"x_train", "x_test"} <= arrays.keys():
        raw = _from_splits(arrays, "x_train", "x_test", argument)
        raw.y_train, raw.y_test = y_train, y_test
        return raw
    if "x" in arrays:
        return _split_last(arrays["x"], _labels(arrays.get("y")), argument)
    expected = "an .npz with keys x_train and x_test, or x"
    raise InputError(argument, expected, f"keys {sorted(arrays)}")


def _split_last(x, y, argument):
    """Hold out the last 10% (at least one example) as the test split, deterministically."""
    x = validate_images(x, argument=argument, bernoulli=True)
    if len(x) < 2:
        raise InputError(argument, "at least 2 images to split into train and test", f"{len(x)}")
    if y is not None and len(y) != len(x):
        raise InputError(argument, f"{len(x)} labels, one per image", f"{len(y)}")
    cut = len(x) - max(1, len(x) // 10)
    return _Raw(
        x_train=x[:cut],
        x_test=x[cut:],
        y_train=None if y is None else y[:cut],
        y_test=None if y is None else y[cut:],
    )
