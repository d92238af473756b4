"""A ``--dataset`` that is a path: an ``.npz``, ``.npy``, IDX file or a folder of images, read by
the bounded readers of :mod:`tfvae.data.files`, or a table (CSV, Parquet) read by
:mod:`tfvae.data.tables`. Not registered by name: it is what any name that no source or scheme
claims is read as."""

import collections
import dataclasses

from tfvae.data import files
from tfvae.data.tables import TABLE_SUFFIXES, read_table
from tfvae.data.validation import with_mask
from tfvae.data.sources.splits import from_arrays, labels, split_last
from tfvae.errors import InputError, arg


def read_path(path, image_size=None, label_column=None, exclude_columns=(), column_types=None):
    """The splits of the file or folder ``path`` (a ``pathlib.Path``); a folder's images are
    resized to ``image_size`` as each is read. A table's columns are its features but those in
    ``exclude_columns``, ``label_column`` (the labels) and ``id``, of the types inferred or
    given by ``column_types``."""
    argument = arg("name", str(path))
    if path.suffix.lower() in TABLE_SUFFIXES:
        table = read_table(path, exclude=exclude_columns or (), label=label_column,
                           column_types=column_types)
        splits = split_last(table.values, table.labels, argument, vectors=True)
        # Columns of other types than real ones take the table head: each by its type.
        mixed = any(column.type != "real" for column in table.columns)
        return dataclasses.replace(splits, columns=table.columns,
                                   likelihood="table" if mixed else "normal",
                                   allowed_binarize=("none",))
    if label_column is not None or exclude_columns or column_types:
        given = ("label_column" if label_column is not None else
                 "exclude_columns" if exclude_columns else "column_types")
        raise InputError(given, f"a table ({', '.join(TABLE_SUFFIXES)}) to name columns of",
                         repr(str(path)))
    if path.is_dir():
        return split_last(files.read_image_folder(path, "name", image_size), None, argument)
    if not path.is_file():
        raise InputError("name", files.FILE_EXPECTED, repr(str(path)))
    if path.suffix == ".npz":
        return _from_npz(path, argument)
    if path.suffix == ".npy":
        return split_last(files.read_npy(path, "name"), None, argument)
    images = files.read_idx(path, "name")
    return split_last(images, files.idx_labels(path, len(images)), argument)


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
