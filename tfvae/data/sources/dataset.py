"""``load_dataset``: a data source's splits, found by name, checked, resized and binarized into a
:class:`Dataset`. The sources and what each returns are described in :mod:`tfvae.data.sources`."""

import dataclasses
import hashlib
import inspect
import os
import pathlib

import numpy as np

from tfvae.checks import check_bool, check_choice, check_image_size, check_int, check_seed
from tfvae.data import files, image_folders
from tfvae.data.pipelines import binarize as bernoulli_sample
from tfvae.data.sources import SCHEMES, SOURCES, known_names
from tfvae.data.sources.paths import read_path
from tfvae.data.sources.splits import Splits, check_labels, labels
from tfvae.data.streams import WHERE_POSSIBLE, choose_storage, is_stream, refuse_binarization
from tfvae.data.validation import missing_allowed, validate_examples, validate_vectors
from tfvae.errors import InputError, arg
from tfvae.layers.registries import likelihood_support
from tfvae.options import BINARIZE_MODES, STORAGES

_PATH_SUFFIXES = (".npz", ".npy", ".gz", "ubyte", ".csv", ".tsv", ".parquet", ".pq")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Train and test examples, float32 images ``[N, H, W, C]`` or vectors ``[N, D]``, with what
    was applied.

    ``likelihood`` is the suggested decoder ("bernoulli" for values in [0, 1], "gaussian" for
    Frey Face, "normal" for other real values); ``binarize`` is the
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
    # A table's feature columns (tfvae.data.tables.Column), None for other data.
    columns: tuple | None = None
    # Held in memory or streamed from disk, and why (what tfvae train says first).
    storage: str = ""

    @property
    def streamed(self):
        return is_stream(self.x_train)

    @property
    def image_shape(self):
        """The shape of one example: ``(H, W, C)`` of an image, ``(D,)`` of a vector."""
        return tuple(self.x_train.shape[1:])

    def checksum(self):
        """sha256 of the examples and labels as the model sees them: the same data read from
        another place, or another format, has the same checksum."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.x_test, self.y_train, self.y_test):
            if is_stream(array):
                digest.update(array.fingerprint().encode())
            elif array is not None:
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


def load_dataset(
    name="mnist",
    *,
    binarize=None,
    data_path=None,
    train_examples=None,
    test_examples=None,
    seed=0,
    image_size=None,
    label_column=None,
    exclude_columns=(),
    column_types=None,
    allow_missing=False,
    storage="auto",
    train_split=None,
    test_split=None,
):
    """Load a registered source, a ``scheme:NAME`` source (``tfds:<name>``) or a user file as a
    :class:`Dataset`.

    ``binarize`` is None (the dataset's default) or one of "dynamic", "static", "none".
    ``data_path`` locates data that is not embedded: the binarized MNIST ``.npz``, or the TFDS
    ``data_dir``. ``train_examples``/``test_examples`` keep the first N examples of each split,
    after binarization, so a subset is a prefix of the full set. ``seed`` drives binarization.
    ``image_size`` ``[H, W]`` resizes every image (a folder's as each file is read), before
    binarization. A table (CSV, Parquet) takes its labels from ``label_column``, leaves out
    the columns ``exclude_columns`` and reads the columns of ``column_types`` (name -> type, or
    "NAME=TYPE" strings) as those types. ``allow_missing``: NaN (an empty cell of a table) is a
    missing value rather than a data error. ``storage``: "memory" holds the examples in memory
    as arrays, "stream" leaves them on disk (:mod:`tfvae.data.streams`: an image folder, an
    ``.npy`` file, a prepared dataset), "auto" streams those whose arrays would be large.
    ``train_split`` and ``test_split`` are a TFDS dataset's split expressions (``train[:90%]``).
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str) or not name:
        raise InputError("name", "a dataset name or path", repr(name))
    train_examples = check_int("train_examples", train_examples, optional=True)
    test_examples = check_int("test_examples", test_examples, optional=True)
    check_seed("seed", seed)
    image_size = check_image_size("image_size", image_size, optional=True)
    if binarize is not None:
        check_choice("binarize", binarize, BINARIZE_MODES)
    splits = read_splits(name, data_path=data_path, image_size=image_size,
                         label_column=label_column, exclude_columns=exclude_columns,
                         column_types=column_types, allow_missing=allow_missing, storage=storage,
                         train_split=train_split, test_split=test_split)
    mode = _resolve_binarize(name, binarize, splits)
    if (storage == WHERE_POSSIBLE and mode == "static" and is_stream(splits.x_train)
            and not splits.already_binary):  # binarized once: in memory
        return load_dataset(name, binarize=binarize, data_path=data_path,
                            train_examples=train_examples, test_examples=test_examples,
                            seed=seed, image_size=image_size, label_column=label_column,
                            exclude_columns=exclude_columns, column_types=column_types,
                            allow_missing=allow_missing, storage="memory",
                            train_split=train_split, test_split=test_split)
    x_train, x_test = _apply_binarize(mode, splits, seed, name)
    if splits.already_binary:
        mode = "static"
    return Dataset(
        name=name,
        x_train=x_train[:train_examples],
        x_test=x_test[:test_examples],
        y_train=None if splits.y_train is None else splits.y_train[:train_examples],
        y_test=None if splits.y_test is None else splits.y_test[:test_examples],
        likelihood=splits.likelihood,
        binarize=mode,
        columns=splits.columns,
        storage=splits.storage,
    )


def read_splits(name, *, data_path=None, image_size=None, label_column=None, exclude_columns=(),
                column_types=None, allow_missing=False, storage="auto", train_split=None,
                test_split=None):
    """The :class:`Splits` of source ``name`` as :func:`load_dataset` reads them (its arguments),
    checked and resized, before any binarization."""
    check_choice("storage", storage, (*STORAGES, WHERE_POSSIBLE))
    options = {"label_column": label_column, "exclude_columns": list(exclude_columns or ()),
               "column_types": column_types, "train_split": train_split,
               "test_split": test_split}
    with missing_allowed(check_bool("allow_missing", allow_missing)):
        return _resized(_checked(_read(name, data_path, image_size, options, storage),
                                 name), image_size, name)


def looks_like_path(name):
    """Whether a ``--dataset`` value names a file or folder rather than a registered source."""
    if _registered(name) is not None:
        return False
    return os.path.exists(name) or name.endswith(_PATH_SUFFIXES) or os.sep in name or "/" in name


# ----------------------------------------------------------------------------------- sources


def _registered(name):
    """``(source, leading arguments)`` of a registered name or ``scheme:NAME``, else None."""
    if name in SOURCES:
        return SOURCES.get(name), ()
    scheme, _, rest = name.partition(":")
    if rest and scheme in SCHEMES:
        return SCHEMES.get(scheme), (rest,)
    return None


def _read(name, data_path, image_size, source_options, storage):
    """What the source of ``name`` returns, given the keyword arguments it takes."""
    source, args = _registered(name) or (None, ())
    if source is None and looks_like_path(name):
        source, args = read_path, (pathlib.Path(name),)
    if source is None:
        raise InputError("name", f"one of {', '.join(known_names())}, or a path to "
                         f"{files.FILE_EXPECTED[3:]}", repr(name))
    takes = _parameters(source)
    if data_path is not None and "data_path" not in takes:
        raise InputError("data_path", f"no {arg('data_path')} with {arg('name', name)} (only "
                         f"{', '.join(_reading_local_data())})", repr(os.fspath(data_path)))
    for option, value in source_options.items():
        if value and option not in takes:
            only = ("tfds:NAME" if option.endswith("_split")
                    else "a table: .csv, .tsv, .parquet")
            raise InputError(option, f"no {arg(option)} with {arg('name', name)} (only with "
                             f"{only})", repr(value))
    given = {"data_path": data_path, "image_size": image_size, "storage": storage,
             **{key: value for key, value in source_options.items() if value is not None}}
    # A source read whole: "stream" is refused before it is read.
    held = None if "storage" in takes else choose_storage(storage, name, None, None,
                                                          streamable=False)[1]
    splits = source(*args, **{key: value for key, value in given.items() if key in takes})
    if not isinstance(splits, Splits):
        raise InputError(arg("name", name), "a source that returns tfvae.data.Splits",
                         f"{type(splits).__name__}")
    splits.storage = splits.storage or held
    return splits


def _reading_local_data():
    """The sources and schemes that take a ``data_path``."""
    return ([name for name in SOURCES.names() if "data_path" in _parameters(SOURCES.get(name))]
            + [f"{scheme}:NAME" for scheme in SCHEMES.names()
               if "data_path" in _parameters(SCHEMES.get(scheme))])


def _parameters(source):
    """The names a source's function takes: it is given only those of ``data_path`` and
    ``image_size`` (so a source that reads no local file takes neither, and --data-path with it
    is refused)."""
    return inspect.signature(source).parameters


def _checked(splits, name):
    """``splits`` as every model takes them: images or vectors (a table's rows always) validated
    (again, for the built-in sources, which name their files as they read them: a quick pass),
    labels int64, one per example."""
    support = likelihood_support(splits.likelihood)
    validate = validate_examples if splits.columns is None else validate_vectors
    checked = {}
    for split in ("train", "test"):
        if is_stream(getattr(splits, f"x_{split}")):  # checked as it is read
            check_labels(getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}"),
                         f"{arg('name', name)} (y_{split})")
            continue
        x = validate(getattr(splits, f"x_{split}"), argument=f"{arg('name', name)} (x_{split})",
                     support=support)
        y = labels(getattr(splits, f"y_{split}"))
        check_labels(x, y, f"{arg('name', name)} (y_{split})")
        checked.update({f"x_{split}": x, f"y_{split}": y})
    return dataclasses.replace(splits, **checked)


def _resized(splits, image_size, name):
    """``splits`` with its images resized to ``image_size`` (a no-op where they have that size)."""
    if image_size is None or list(splits.x_train.shape[1:3]) == image_size:
        return splits
    if is_stream(splits.x_train):  # a stream resizes as it reads, or refuses a size
        return splits
    if splits.x_train.ndim == 2:
        raise InputError("image_size", f"no image size for {name}, which holds vectors of "
                         f"{splits.x_train.shape[1]} values", repr(image_size))
    if splits.already_binary:  # resizing would make grey levels of its 0/1 pixels
        raise InputError("image_size", f"no resizing of {name}, which is already binary "
                         "(resize it before binarizing)", repr(image_size))
    x_train, x_test = (image_folders.resize(x, image_size) for x in (splits.x_train, splits.x_test))
    return dataclasses.replace(splits, x_train=x_train, x_test=x_test)


# ------------------------------------------------------------------------------ binarization


def _resolve_binarize(name, binarize, splits):
    mode = splits.default_binarize if binarize is None else binarize
    if mode not in splits.allowed_binarize:
        why = "already binary" if splits.already_binary else "continuous data"
        raise InputError(
            "binarize",
            f"one of {', '.join(splits.allowed_binarize)} for {name} ({why})",
            repr(binarize),
        )
    return mode


def _apply_binarize(mode, splits, seed, name):
    x_train, x_test = splits.x_train, splits.x_test
    if is_stream(x_train) and mode != "none":
        if mode == "static" and not splits.already_binary:
            refuse_binarization(mode, name)
        if mode == "dynamic":  # the test split is binarized as it is read
            x_test.binarize_seed = int(np.random.SeedSequence(seed).generate_state(1)[0] >> 1)
        return x_train, x_test
    rng_train, rng_test = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    if mode == "static":
        x_train = bernoulli_sample(x_train, rng_train)
    if mode in ("static", "dynamic"):
        x_test = bernoulli_sample(x_test, rng_test)
    return x_train, x_test
