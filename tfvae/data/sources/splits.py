"""What a data source returns (:class:`Splits`), and the helpers the built-in sources share to
make one from arrays."""

import dataclasses

import numpy as np

from tfvae.data.validation import validate_images
from tfvae.errors import InputError
from tfvae.options import BINARIZE_MODES


@dataclasses.dataclass
class Splits:
    """A source's train and test images before binarization, and what suits them.

    ``x_train`` and ``x_test`` are images in any form :func:`tfvae.data.validate_images` accepts
    (``load_dataset`` checks them); ``y_train`` and ``y_test`` integer labels, one per image, or
    None. ``likelihood`` is the decoder that suits the data ("bernoulli" needs values in [0, 1]).
    ``default_binarize`` is the binarization applied when none is asked for, out of
    ``allowed_binarize``; ``already_binary`` data holds only 0 and 1 (it is reported as
    statically binarized and never resized).
    """

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray | None = None
    y_test: np.ndarray | None = None
    likelihood: str = "bernoulli"
    default_binarize: str = "none"
    allowed_binarize: tuple = BINARIZE_MODES
    already_binary: bool = False


def from_arrays(arrays, train_key, test_key, argument):
    """A label-less :class:`Splits` from two arrays of ``arrays``, validated for a Bernoulli
    decoder with errors naming ``argument`` and the key."""
    x_train, x_test = (
        validate_images(arrays[key], argument=f"{argument} ({key})", bernoulli=True)
        for key in (train_key, test_key)
    )
    return Splits(x_train=x_train, x_test=x_test)


def labels(y):
    """Labels as int64, or None."""
    return None if y is None else np.asarray(y).astype(np.int64)


def check_labels(x, y, argument):
    """Refuse labels ``y`` that are not one per image of ``x``."""
    if y is not None and len(y) != len(x):
        raise InputError(argument, f"{len(x)} labels, one per image", f"{len(y)}")


def split_last(x, y, argument):
    """Hold out the last 10% (at least one example) as the test split, deterministically."""
    x = validate_images(x, argument=argument, bernoulli=True)
    if len(x) < 2:
        raise InputError(argument, "at least 2 images to split into train and test", f"{len(x)}")
    check_labels(x, y, argument)
    cut = len(x) - max(1, len(x) // 10)
    return Splits(
        x_train=x[:cut],
        x_test=x[cut:],
        y_train=None if y is None else y[:cut],
        y_test=None if y is None else y[cut:],
    )
