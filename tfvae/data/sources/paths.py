"""A ``--dataset`` that is a path: an ``.npz``, ``.npy``, IDX file or a folder of images, read by
the bounded readers of :mod:`tfvae.data.files`, or a table (CSV, Parquet) read by
:mod:`tfvae.data.tables`. Not registered by name: it is what any name that no source or scheme
claims is read as."""

import collections
import dataclasses

import numpy as np

from tfvae.data import files, image_folders
from tfvae.data.prepared import is_prepared, read_prepared
from tfvae.data.streams import ImageFiles, MemoryMappedArray, choose_storage
from tfvae.data.tables import TABLE_SUFFIXES, Column, read_table
from tfvae.data.validation import validate_examples, with_mask
from tfvae.data.sources.splits import Splits, from_arrays, labels, split_last, suited_stream
from tfvae.errors import InputError, arg


def read_path(path, image_size=None, label_column=None, exclude_columns=(), column_types=None,
              storage="auto"):
    """The splits of the file or folder ``path`` (a ``pathlib.Path``); a folder's images are
    resized to ``image_size`` as each is read. A table's columns are its features but those in
    ``exclude_columns``, ``label_column`` (the labels) and ``id``, of the types inferred or
    given by ``column_types``. A folder of images, an ``.npy`` file and a prepared dataset are
    streamed from disk (:mod:`tfvae.data.streams`) where ``storage`` says so or, "auto", where
    they are large."""
    argument = arg("name", str(path))
    if path.is_dir() and is_prepared(path):
        return _prepared(path, argument, image_size, storage)
    if path.suffix.lower() in TABLE_SUFFIXES:
        why = choose_storage(storage, str(path), None, None, streamable=False)[1]
        table = read_table(path, exclude=exclude_columns or (), label=label_column,
                           column_types=column_types)
        splits = split_last(table.values, table.labels, argument, vectors=True)
        # Columns of other types than real ones take the table head: each by its type.
        mixed = any(column.type != "real" for column in table.columns)
        return dataclasses.replace(splits, columns=table.columns,
                                   likelihood="table" if mixed else "normal",
                                   allowed_binarize=("none",), storage=why)
    if label_column is not None or exclude_columns or column_types:
        given = ("label_column" if label_column is not None else
                 "exclude_columns" if exclude_columns else "column_types")
        raise InputError(given, f"a table ({', '.join(TABLE_SUFFIXES)}) to name columns of",
                         repr(str(path)))
    if path.is_dir():
        return _image_folder(path, argument, image_size, storage)
    if not path.is_file():
        raise InputError("name", files.FILE_EXPECTED, repr(str(path)))
    if path.suffix == ".npy":
        return _npy(path, argument, storage)
    why = choose_storage(storage, str(path), None, None, streamable=False)[1]
    if path.suffix == ".npz":
        return dataclasses.replace(_from_npz(path, argument), storage=why)
    images = files.read_idx(path, "name")
    return dataclasses.replace(split_last(images, files.idx_labels(path, len(images)), argument),
                               storage=why)


def _image_folder(path, argument, image_size, storage):
    count, shape = image_folders.estimate_image_folder(path, "name", image_size)
    stream, why = choose_storage(storage, str(path), count, shape, unit="image files")
    if not stream:
        splits = split_last(image_folders.read_image_folder(path, "name", image_size), None, argument)
        return dataclasses.replace(splits, storage=why)
    names, sizes, shape = image_folders.scan_image_folder(path, "name", image_size)
    images = ImageFiles(path, names, sizes, shape, image_size=image_size)
    return _streamed(images, argument, why)


def _npy(path, argument, storage):
    array = files.memory_map_npy(path, "name")
    streamable = array.dtype in (np.uint8, np.float32, np.float64) and array.ndim >= 2
    stream, why = choose_storage(storage, str(path), len(array), array.shape[1:],
                                 streamable=streamable)
    if not stream:
        return dataclasses.replace(split_last(np.asarray(array), None, argument), storage=why)
    # The shape examples take ([N, H, W] images get a channel), from one example of zeros.
    shape = validate_examples(np.zeros((1, *array.shape[1:]), array.dtype),
                              argument=argument).shape[1:]
    return _streamed(MemoryMappedArray(str(path), str(path), array, shape), argument, why)


def _streamed(stream, argument, why):
    """Splits of a stream: its last 10% the test split, the likelihood suggested by a sample."""
    if len(stream) < 2:
        raise InputError(argument, "at least 2 images to split into train and test",
                         f"{len(stream)}")
    train, test = stream.split_last()
    return suited_stream(train, test, why, images=isinstance(stream, ImageFiles))


def _prepared(path, argument, image_size, storage):
    index, splits = read_prepared(path)
    shape = index["example_shape"]
    if image_size is not None and list(image_size) != shape[:2]:
        raise InputError("image_size", f"none, or the prepared size {shape[0]} {shape[1]} "
                         "(prepare the source again at another size)", repr(image_size))
    count = sum(len(split) for split in splits.values())
    stream, why = choose_storage(storage, str(path), count, shape)
    y_train, y_test = splits["train"].labels, splits["test"].labels
    if not stream:
        splits = {name: np.asarray(split) for name, split in splits.items()}
    columns = index.get("columns")
    return Splits(x_train=splits["train"], x_test=splits["test"], y_train=y_train, y_test=y_test,
                  likelihood=index["likelihood"], storage=why,
                  default_binarize=index["default_binarize"],
                  allowed_binarize=tuple(index["allowed_binarize"]),
                  already_binary=index["already_binary"],
                  columns=None if columns is None else tuple(
                      Column(**{**c, "categories": None if c.get("categories") is None
                                else tuple(c["categories"])}) for c in columns))


def _from_npz(path, argument):
    """An .npz's splits; a ``mask`` (``mask_train``, ``mask_test``) beside ``x`` marks its
    missing values with 0."""
    arrays = files.read_npz(path, "name")
    masked = {key: with_mask(arrays[key], arrays[mask], f"{argument} ({mask})")
              for key, mask in (("x", "mask"), ("x_train", "mask_train"), ("x_test", "mask_test"))
              if key in arrays and mask in arrays}
    arrays = collections.ChainMap(masked, arrays)  # the others still read when asked for
    if {"x_train", "x_test"} <= arrays.keys():
        splits = from_arrays(arrays, "x_train", "x_test", argument)
        splits.y_train, splits.y_test = labels(arrays.get("y_train")), labels(arrays.get("y_test"))
        return splits
    if "x" in arrays:
        return split_last(arrays["x"], labels(arrays.get("y")), argument)
    expected = "an .npz with keys x_train and x_test, or x"
    raise InputError(argument, expected, f"keys {sorted(arrays)}")
