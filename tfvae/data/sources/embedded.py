"""The datasets packaged with tfvae: MNIST and the Frey faces, each file checked against its
sha256 before it is read."""

import hashlib
import pathlib

import numpy as np

from tfvae.data.sources.splits import Splits, from_arrays, labels
from tfvae.data.validation import validate_images
from tfvae.errors import InputError, arg

# Where the packaged dataset files are.
DATA_DIR = pathlib.Path(__file__).parent.parent / "packaged"
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


def embedded_file(name):
    """The packaged file of ``name``, after checking its sha256."""
    filename, expected = _EMBEDDED[name]
    path = DATA_DIR / filename
    if not path.is_file():
        got = "no such file (reinstall tfvae)"
        raise InputError(arg("name", name), f"the packaged file {path}", got)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise InputError(
            arg("name", name),
            f"{path} with sha256 {expected}",
            f"sha256 {digest} (the packaged file is corrupted or modified; reinstall tfvae)",
        )
    return path


def mnist():
    """MNIST's 60,000 training and 10,000 test digits with their labels, binarized dynamically by
    default."""
    with np.load(embedded_file("mnist"), allow_pickle=False) as f:
        arrays = {key: f[key] for key in ("x_train", "x_test", "y_train", "y_test")}
    splits = from_arrays(arrays, "x_train", "x_test", arg("name", "mnist"))
    splits.y_train, splits.y_test = labels(arrays["y_train"]), labels(arrays["y_test"])
    splits.default_binarize = "dynamic"
    return splits


def frey_face():
    """The 1,965 Frey faces (28x20 grey levels) for a Gaussian decoder, never binarized."""
    import scipy.io  # only this dataset needs scipy

    ff = scipy.io.loadmat(embedded_file("frey_face"))["ff"]  # uint8 [560, 1965], column = image
    images = validate_images(
        ff.T.reshape(-1, *_FREY_SHAPE), argument=arg("name", "frey_face"), bernoulli=False
    )
    # A fixed permutation (independent of `seed`), so every run reports on the same test faces.
    order = np.random.default_rng(0).permutation(len(images))
    return Splits(
        x_train=images[order[:_FREY_TRAIN]],
        x_test=images[order[_FREY_TRAIN:]],
        likelihood="gaussian",
        allowed_binarize=("none",),
    )
