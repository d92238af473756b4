"""Datasets for tfvae: a small registry of named datasets, user files, and tf.data pipelines.

``load_dataset(name)`` returns a :class:`Dataset` whose images are float32 ``[N, H, W, C]`` in
``[0, 1]`` (``C = 1`` for grey images). ``name`` is one of:

=====================  ===============================================  ==========  ===========
name                   source                                           likelihood  binarize
=====================  ===============================================  ==========  ===========
``"mnist"``            embedded ``tfvae/datasets/mnist.npz`` (60,000    bernoulli   ``dynamic``
                       train / 10,000 test, labels), sha256-checked
``"binarized_mnist"``  Larochelle & Murray's static binarization:       bernoulli   ``static``
                       ``data_path``, else ``$TFVAE_BINARIZED_MNIST``,              (fixed)
                       else ``tensorflow_datasets``; 50,000 train (the
                       ``valid`` split is not used) / 10,000 test
``"frey_face"``        embedded ``tfvae/datasets/frey_rawface.mat``     gaussian    ``none``
                       (1,965 faces 28x20), sha256-checked, a fixed                 (fixed)
                       1,772 / 193 split
``"tfds:<name>"``      ``tensorflow_datasets`` (optional dependency),   bernoulli   ``none``
                       its ``train`` and ``test`` splits
a path                 ``.npz``, ``.npy``, an IDX file (optionally      bernoulli   ``none``
                       ``.gz``) or a folder of PNG/JPEG/BMP images
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
import gzip
import hashlib
import math
import os
import pathlib
import struct

import numpy as np
import tensorflow as tf

from tfvae.errors import InputError

DATASETS = ("mnist", "binarized_mnist", "frey_face")
BINARIZE_MODES = ("dynamic", "static", "none")

_DATA_DIR = pathlib.Path(__file__).with_name("datasets")
# name -> (packaged file, sha256 from tfvae/datasets/SOURCES.md)
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
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_PATH_SUFFIXES = (".npz", ".npy", ".gz", "ubyte")
_FILE_EXPECTED = "an existing .npz, .npy, IDX file or image folder"
_SHAPE_EXPECTED = "images [N, H, W] or [N, H, W, C] (or [N, D] with D a perfect square)"


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
):
    """Load a registered dataset, a ``tfds:<name>`` dataset or a user file as a :class:`Dataset`.

    ``binarize`` is None (the dataset's default) or one of "dynamic", "static", "none".
    ``data_path`` locates data that is not embedded: the binarized MNIST ``.npz``, or the TFDS
    ``data_dir``. ``train_examples``/``test_examples`` keep the first N examples of each split,
    after binarization, so a subset is a prefix of the full set. ``seed`` drives binarization.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str) or not name:
        raise InputError("--dataset", "a dataset name or path", repr(name))
    _check_positive_int(train_examples, "--train-examples", optional=True)
    _check_positive_int(test_examples, "--test-examples", optional=True)
    _check_seed(seed)
    if binarize is not None and binarize not in BINARIZE_MODES:
        raise InputError("--binarize", f"one of {', '.join(BINARIZE_MODES)}", repr(binarize))

    raw = _load_raw(name, data_path)
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


def make_pipeline(
    x, *, batch_size, shuffle=False, dynamic_binarize=False, seed=0, drop_remainder=False
):
    """A ``tf.data.Dataset`` of float32 batches of ``x`` (images only, no labels).

    ``shuffle`` reshuffles the whole array each epoch; ``dynamic_binarize`` replaces each batch by
    a Bernoulli sample of its pixels, fresh each epoch. Both are seeded from ``seed``, so two
    pipelines built with one seed yield the same sequence of epochs.
    """
    x = validate_images(x, argument="x", bernoulli=dynamic_binarize)
    _check_positive_int(batch_size, "--batch-size")
    _check_seed(seed)
    shuffle_seed, noise_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
    # No cache(): from_tensor_slices already holds x in memory; cache() would keep a second copy.
    ds = tf.data.Dataset.from_tensor_slices(x)
    if shuffle:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if dynamic_binarize:
        # One stateless seed per batch, from a stream that differs each epoch but is fixed by
        # noise_seed: reproducible runs, fresh samples per epoch, one vectorized op per batch.
        batch_seeds = tf.data.Dataset.random(seed=noise_seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip(ds, batch_seeds).map(
            _bernoulli_batch, num_parallel_calls=tf.data.AUTOTUNE
        )
    return ds.prefetch(tf.data.AUTOTUNE)


def make_train_stream(x, *, batch_size, seed=0, first_epoch=0, drop_remainder=False):
    """An endless ``tf.data.Dataset`` of shuffled float32 batches of ``x``, epoch after epoch.

    Epoch ``e`` (counting from ``first_epoch``) is one pass over ``x`` in an order fixed by
    ``(seed, e)``: ``ceil(len(x) / batch_size)`` batches, the last one partial. Order depends on
    the epoch number, not on how many iterators were made before, so a resumed run sees the same
    batches as one that was never stopped, and a ``tf.distribute`` run (Keras reads one batch
    ahead to build the model) the same as one device. Train with
    ``fit(..., steps_per_epoch=steps_per_epoch(len(x), batch_size))``. ``drop_remainder`` leaves
    out each epoch's partial batch (different examples each epoch), for devices that need every
    batch the same shape (TPUs).

    ``x`` is held in memory as one tensor and batches are gathered from it, so the per-example
    cost of a shuffle buffer is paid per batch instead. Binarization is left to the model
    (``VAE.dynamic_binarization``), which draws it on the device.
    """
    x = validate_images(x, argument="x", bernoulli=False)
    _check_positive_int(batch_size, "--batch-size")
    _check_seed(seed)
    _check_seed(first_epoch)
    shuffle_seed = int(np.random.SeedSequence(seed).generate_state(1)[0] >> 1)
    n, steps = len(x), steps_per_epoch(len(x), batch_size, drop_remainder)
    if steps == 0:
        raise InputError("--batch-size", f"at most the {n} training examples when partial "
                         "batches are left out", repr(batch_size))
    levels = _grey_levels(x)
    # 8-bit images (MNIST) are held as bytes, a quarter of the memory, and scaled per batch.
    images = tf.constant(x if levels is None else levels)
    scale = (lambda batch: batch) if levels is None else (
        lambda batch: tf.cast(batch, tf.float32) / 255.0)

    def epoch_batches(epoch):
        key = tf.stack([tf.constant(shuffle_seed, tf.int64), epoch])
        order = tf.argsort(tf.random.stateless_uniform([n], seed=key))
        return tf.data.Dataset.range(steps).map(
            lambda i: order[i * batch_size: tf.minimum((i + 1) * batch_size, n)])

    ds = tf.data.Dataset.counter(first_epoch).flat_map(epoch_batches)
    ds = ds.map(lambda index: scale(tf.gather(images, index)), num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Each worker holds the whole (small) array: shard the batches, not files.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _grey_levels(x):
    """``x`` as uint8 k when every value is exactly float32(k / 255), else None."""
    levels = np.empty(x.shape, np.uint8)
    for start in range(0, len(x), 4096):  # in blocks: no full-size float temporaries
        block = x[start:start + 4096]
        levels[start:start + 4096] = np.rint(block * 255)
        if not np.array_equal(levels[start:start + 4096].astype(np.float32) / np.float32(255),
                              block):
            return None
    return levels


def steps_per_epoch(num_examples, batch_size, drop_remainder=False):
    """Batches in one pass over ``num_examples``: the last one partial, or left out."""
    if drop_remainder:
        return num_examples // batch_size
    return -(-num_examples // batch_size)


def validate_images(x, *, argument, bernoulli):
    """Return ``x`` as float32 ``[N, H, W, C]``, or raise InputError naming ``argument``.

    Accepts ``[N, H, W]`` (adds C = 1), ``[N, H, W, C]`` and ``[N, D]`` with D a perfect square
    (to ``[N, sqrt D, sqrt D, 1]``). Integers are grey levels 0..255, scaled by 1/255, unless they
    hold only 0 and 1 (kept as binary); floats are kept. Values must be finite, and in [0, 1]
    when ``bernoulli`` is true.
    """
    try:
        x = np.asarray(x)
    except ValueError as exc:  # ragged nested lists
        got = f"an array-like that is not one ({exc})"
        raise InputError(argument, _SHAPE_EXPECTED, got) from exc
    if x.dtype == bool:
        x = x.astype(np.uint8)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise InputError(argument, f"numeric {_SHAPE_EXPECTED}", f"dtype {x.dtype}")
    x = _to_nhwc(x, argument)
    if np.issubdtype(x.dtype, np.integer):
        return _scale_integers(x, argument)
    x = x.astype(np.float32, copy=False)
    _check_values(x, argument, bernoulli)
    return x


# ------------------------------------------------------------------------ validation helpers


def _to_nhwc(x, argument):
    if x.ndim == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            got = f"shape {x.shape} ({x.shape[1]} is not a square)"
            raise InputError(argument, _SHAPE_EXPECTED, got)
        x = x.reshape(len(x), side, side)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4:
        raise InputError(argument, _SHAPE_EXPECTED, f"shape {x.shape} of dtype {x.dtype}")
    if 0 in x.shape:
        raise InputError(argument, f"at least one image of {_SHAPE_EXPECTED}", f"shape {x.shape}")
    return x


def _scale_integers(x, argument):
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi > 255:
        raise InputError(argument, "integer grey levels in [0, 255]", f"values in [{lo}, {hi}]")
    out = x.astype(np.float32)
    if hi > 1:  # 0/1 data is already binary; anything else is 0..255 grey levels
        out /= 255
    return out


def _check_values(x, argument, bernoulli):
    finite = np.isfinite(x)
    if not finite.all():
        n_nan = int(np.isnan(x).sum())
        n_inf = int(x.size - finite.sum()) - n_nan
        raise InputError(argument, "finite values", f"{n_nan} NaN and {n_inf} infinite values")
    if bernoulli:
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            expected = "values in [0, 1] for a Bernoulli likelihood"
            raise InputError(argument, expected, f"values in [{lo:g}, {hi:g}]")


def _check_positive_int(value, argument, optional=False):
    if value is None and optional:
        return
    # bool is an int subclass but never a meaningful count
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(argument, "a positive integer", repr(value))


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError("--seed", "a non-negative integer", repr(seed))


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
        x_train = _bernoulli_numpy(x_train, rng_train)
    if mode in ("static", "dynamic"):
        x_test = _bernoulli_numpy(x_test, rng_test)
    return x_train, x_test


def _bernoulli_numpy(x, rng):
    return (rng.random(x.shape, dtype=np.float32) < x).astype(np.float32)


def _bernoulli_batch(x, batch_seed):
    noise = tf.random.stateless_uniform(tf.shape(x), seed=tf.stack([batch_seed, 0]))
    return tf.cast(noise < x, tf.float32)


# ----------------------------------------------------------------------------------- sources


def _load_raw(name, data_path):
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
    if _looks_like_path(name):
        return _load_path(pathlib.Path(name))
    raise InputError(
        "--dataset",
        f"one of {', '.join(DATASETS)}, tfds:<name>, or a path to {_FILE_EXPECTED[3:]}",
        repr(name),
    )


def _looks_like_path(name):
    return os.path.exists(name) or name.endswith(_PATH_SUFFIXES) or os.sep in name or "/" in name


def _embedded_file(name):
    """The packaged file of ``name``, after checking its sha256."""
    filename, expected = _EMBEDDED[name]
    path = _DATA_DIR / filename
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
    arrays = _read_npz(path, argument, expected)
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
    try:
        import tensorflow_datasets as tfds  # optional: only tfds:<name> needs it
    except ImportError as exc:
        raise InputError(
            f"--dataset tfds:{tfds_name}",
            "tensorflow-datasets installed (pip install tensorflow-datasets)",
            f"ImportError: {exc}",
        ) from exc
    try:
        train, test = (
            _tfds_arrays(split)
            for split in tfds.load(tfds_name, split=["train", "test"], data_dir=data_dir)
        )
    except Exception as exc:  # tfds raises many types (not found, download, missing split)
        raise InputError(
            f"--dataset tfds:{tfds_name}",
            "a TFDS dataset with train and test splits that tfds.load can provide",
            f"{type(exc).__name__}: {exc}",
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


def _load_path(path):
    argument = f"--dataset {path}"
    if path.is_dir():
        return _split_last(_read_image_folder(path), None, argument)
    if not path.is_file():
        raise InputError("--dataset", _FILE_EXPECTED, repr(str(path)))
    if path.suffix == ".npz":
        return _from_npz(path, argument)
    if path.suffix == ".npy":
        return _split_last(_read_npy(path), None, argument)
    images = _read_idx(path)
    return _split_last(images, _idx_labels(path, len(images)), argument)


def _read_npz(path, argument, expected=_FILE_EXPECTED):
    if not path.is_file():
        raise InputError(argument, expected, repr(str(path)))
    try:
        with np.load(path, allow_pickle=False) as f:
            return {key: f[key] for key in f.files}
    except (OSError, ValueError) as exc:  # not a zip, truncated, or pickled objects
        raise InputError(argument, expected, f"{str(path)!r} ({exc})") from exc


def _from_npz(path, argument):
    arrays = _read_npz(path, "--dataset")
    y_train, y_test = _labels(arrays.get("y_train")), _labels(arrays.get("y_test"))
    if {"x_train", "x_test"} <= arrays.keys():
        raw = _from_splits(arrays, "x_train", "x_test", argument)
        raw.y_train, raw.y_test = y_train, y_test
        return raw
    if "x" in arrays:
        return _split_last(arrays["x"], _labels(arrays.get("y")), argument)
    expected = "an .npz with keys x_train and x_test, or x"
    raise InputError(argument, expected, f"keys {sorted(arrays)}")


def _read_npy(path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError("--dataset", _FILE_EXPECTED, f"{str(path)!r} ({exc})") from exc


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


def _read_idx_array(path):
    """Read an IDX file (the raw MNIST format): big-endian header, then unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as exc:  # includes a bad gzip stream
        raise InputError("--dataset", _FILE_EXPECTED, f"{str(path)!r} ({exc})") from exc
    # Magic: two zero bytes, 0x08 (unsigned byte data), then the number of dimensions.
    if len(data) < 4 or data[:3] != b"\x00\x00\x08" or data[3] == 0:
        raise InputError("--dataset", _FILE_EXPECTED, repr(str(path)))
    header = 4 + 4 * data[3]
    dims = struct.unpack(f">{data[3]}I", data[4:header])
    pixels = np.frombuffer(data, np.uint8, offset=header)
    if pixels.size != math.prod(dims):
        expected = f"{math.prod(dims)} bytes after the IDX header {dims}"
        raise InputError(f"--dataset {path}", expected, f"{pixels.size}")
    return pixels.reshape(dims)


def _read_idx(path):
    return validate_images(_read_idx_array(path), argument=f"--dataset {path}", bernoulli=True)


def _idx_labels(images_path, count):
    """Labels from the sibling file named like the images file, with "labels" for "images"."""
    if "images" not in images_path.name:
        return None
    stem = images_path.name.replace("images", "labels").replace("idx3", "idx1")
    stem = stem.removesuffix(".gz")
    for candidate in (images_path.with_name(stem), images_path.with_name(stem + ".gz")):
        if candidate.is_file():
            labels = _read_idx_array(candidate)
            if labels.shape != (count,):
                expected = f"{count} labels, one per image"
                raise InputError(f"--dataset {candidate}", expected, f"shape {labels.shape}")
            return labels.astype(np.int64)
    return None


def _read_image_folder(folder):
    """Images of ``folder`` sorted by file name: grey stays 1 channel, colour becomes RGB."""
    from PIL import Image  # only image folders need Pillow

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        expected = f"a folder with {'/'.join(_IMAGE_SUFFIXES)} images"
        raise InputError("--dataset", expected, repr(str(folder)))
    images = []
    for path in files:
        try:
            with Image.open(path) as img:
                array = np.asarray(img.convert("L" if img.mode in ("1", "L", "LA") else "RGB"))
        except OSError as exc:  # unreadable or not really an image
            got = f"{path.name} ({exc})"
            raise InputError(f"--dataset {folder}", "readable images", got) from exc
        array = array[..., np.newaxis] if array.ndim == 2 else array
        if images and array.shape != images[0].shape:
            raise InputError(
                f"--dataset {folder}",
                f"images of one size and channel count, {images[0].shape} as in {files[0].name}",
                f"{array.shape} in {path.name}",
            )
        images.append(array)
    return np.stack(images)
