"""A ``--dataset`` that is a path: an ``.npz``, ``.npy``, IDX file or a folder of images, read by
the bounded readers of :mod:`tfvae.data.files`. Not registered by name: it is what any name that
no source or scheme claims is read as."""

from tfvae.data import files
from tfvae.data.sources.splits import from_arrays, labels, split_last
from tfvae.errors import InputError, arg


def read_path(path, image_size=None):
    """The splits of the file or folder ``path`` (a ``pathlib.Path``); a folder's images are
    resized to ``image_size`` as each is read."""
    argument = arg("name", str(path))
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
    arrays = files.read_npz(path, "name")
    if {"x_train", "x_test"} <= arrays.keys():
        splits = from_arrays(arrays, "x_train", "x_test", argument)
        splits.y_train, splits.y_test = labels(arrays.get("y_train")), labels(arrays.get("y_test"))
        return splits
    if "x" in arrays:
        return split_last(arrays["x"], labels(arrays.get("y")), argument)
    expected = "an .npz with keys x_train and x_test, or x"
    raise InputError(argument, expected, f"keys {sorted(arrays)}")
