"""``tfds:<name>``: a TensorFlow Datasets dataset's ``train`` and ``test`` splits
(``tensorflow_datasets`` is an optional dependency)."""

import numpy as np

from tfvae.data.sources.splits import from_arrays, labels
from tfvae.errors import InputError, arg


def tfds_dataset(tfds_name, data_path=None):
    """The ``image`` (and ``label``) features of TFDS dataset ``tfds_name``; ``data_path`` is a
    TFDS ``data_dir`` where it was prepared (nothing is downloaded then)."""
    argument = arg("name", f"tfds:{tfds_name}")
    try:
        import tensorflow_datasets as tfds  # optional: only tfds:<name> needs it
    except ImportError as exc:
        raise InputError(argument, "tensorflow-datasets installed (pip install "
                         "tensorflow-datasets, or tfvae[tfds])", f"ImportError: {exc}") from exc
    try:
        tfds.builder(tfds_name, data_dir=data_path)
    except tfds.core.registered.DatasetNotFoundError as exc:
        raise InputError(argument, "the name of a TFDS dataset (tfds.list_builders() lists "
                         "them)", f"{tfds_name!r}, which TFDS does not know") from exc
    try:
        train, test = (
            _arrays(split)
            for split in tfds.load(tfds_name, split=["train", "test"], data_dir=data_path,
                                   download=data_path is None)
        )
    except Exception as exc:  # tfds raises many types (download, missing split, bad data_dir)
        # TFDS's messages run to many lines: the first says what happened.
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(
            argument,
            f"a TFDS dataset with train and test splits, prepared in {arg('data_path', 'DIR')} "
            "(a TFDS data_dir) or downloadable from here; without a network, give a local file "
            f"instead ({arg('name', 'FILE.npz')} with x_train and x_test)",
            f"{type(exc).__name__}: {first_line[:300]}",
        ) from exc
    if "image" not in train:
        raise InputError(argument, "an 'image' feature", f"features {sorted(train)}")
    splits = from_arrays({"train": train["image"], "test": test["image"]}, "train", "test",
                         argument)
    splits.y_train, splits.y_test = labels(train.get("label")), labels(test.get("label"))
    return splits


def _arrays(split):
    """A TFDS split as a dict of numpy arrays.

    Batched by a bounded size and concatenated: ``batch_size=-1`` aborts the process under
    TensorFlow 2.21 (std::length_error from a reserve of the maximal batch).
    """
    batches = list(split.batch(4096).as_numpy_iterator())
    return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}
