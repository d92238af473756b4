"""Larochelle & Murray's statically binarized MNIST: from a local ``.npz``, else from
``tensorflow_datasets``."""

import os
import pathlib

import numpy as np

import tfvae.data.files as files
from tfvae.data.sources.splits import from_arrays
from tfvae.data.sources.tfds import tfds_dataset
from tfvae.errors import InputError, arg

_ENV = "TFVAE_BINARIZED_MNIST"


def binarized_mnist(data_path=None):
    """50,000 training and 10,000 test binary digits (the ``valid`` split is not used) from
    ``data_path``, else ``$TFVAE_BINARIZED_MNIST``, else TFDS."""
    if data_path is not None:
        return _read_npz(pathlib.Path(data_path), "data_path")
    env_path = os.environ.get(_ENV)
    if env_path:
        return _read_npz(pathlib.Path(env_path), _ENV)
    try:
        splits = tfds_dataset("binarized_mnist")
    except InputError as exc:
        raise InputError(
            "data_path",
            f"the binarized MNIST .npz (keys train, valid, test): pass {arg('data_path', 'FILE')} "
            f"or set {_ENV}=FILE",
            f"neither, and tensorflow-datasets could not provide it ({exc})",
        ) from exc
    return _as_binary(splits, arg("name", "binarized_mnist"))


def _read_npz(path, argument):
    expected = "an .npz with keys train, valid, test of 0/1 uint8 [N, 784]"
    arrays = files.read_npz(path, argument, expected)
    if not {"train", "test"} <= arrays.keys():
        raise InputError(argument, expected, f"{str(path)!r} with keys {sorted(arrays)}")
    return _as_binary(from_arrays(arrays, "train", "test", argument), argument)


def _as_binary(splits, argument):
    """Mark ``splits`` as already binary, after checking it holds only 0 and 1."""
    for split in (splits.x_train, splits.x_test):
        if not np.isin(split, (0.0, 1.0)).all():
            raise InputError(argument, "binary images (values 0 and 1 only)", "grey levels")
    splits.allowed_binarize = ("static", "none")
    splits.default_binarize = "static"
    splits.already_binary = True
    return splits
