"""What a data source returns (:class:`Splits`), and the helpers the built-in sources share to
make one from arrays."""

import dataclasses

import numpy as np

from tfvae.data.validation import suggested_likelihood, validate_examples, validate_vectors
from tfvae.errors import InputError
from tfvae.options import BINARIZE_MODES


@dataclasses.dataclass
class Splits:
    """A source's train and test examples before binarization, and what suits them.

    ``x_train`` and ``x_test`` are images or vectors in any form
    :func:`tfvae.data.validation.validate_examples` accepts
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
    # A table's feature columns (tfvae.data.tables.Column), in the order of x's values.
    columns: tuple | None = None
    # Whether the examples are held in memory or streamed from disk, and why (tfvae.data.streams).
    storage: str = ""


def from_arrays(arrays, train_key, test_key, argument):
    """A label-less :class:`Splits` from two arrays of ``arrays`` (images or vectors), validated
    with errors naming ``argument`` and the key, with the likelihood that suits their values."""
    x_train, x_test = (validate_examples(arrays[key], argument=f"{argument} ({key})")
                       for key in (train_key, test_key))
    if x_train.shape[1:] != x_test.shape[1:]:
        raise InputError(f"{argument} ({test_key})", f"examples of shape {x_train.shape[1:]}, "
                         f"as in {train_key}", f"shape {x_test.shape[1:]}")
    return suited(Splits(x_train=x_train, x_test=x_test))


def suited(splits):
    """``splits`` with the likelihood that suits its values: a Bernoulli (any binarization) for
    values in [0, 1], else a Gaussian of unbounded mean, never binarized."""
    likelihood = suggested_likelihood(splits.x_train, splits.x_test)
    allowed = splits.allowed_binarize if likelihood == "bernoulli" else ("none",)
    return dataclasses.replace(splits, likelihood=likelihood, allowed_binarize=allowed)


def suited_stream(train, test, storage):
    """The :class:`Splits` of two streamed splits, with what suits a sample of their values: a
    Bernoulli for values in [0, 1] (any binarization; none needed where they hold only 0 and 1),
    else a Gaussian."""
    from tfvae.data.streams import read_binary_as_binary

    binary = read_binary_as_binary(train, test)
    likelihood = suggested_likelihood(train.head(256), test.head(256))
    return Splits(x_train=train, x_test=test, y_train=train.labels, y_test=test.labels,
                  likelihood=likelihood, storage=storage, already_binary=binary,
                  default_binarize="static" if binary else "none",
                  allowed_binarize=(("static",) if binary else BINARIZE_MODES
                                    if likelihood == "bernoulli" else ("none",)))


def labels(y):
    """Labels as int64, or None."""
    return None if y is None else np.asarray(y).astype(np.int64)


def check_labels(x, y, argument):
    """Refuse labels ``y`` that are not one per image of ``x``."""
    if y is not None and len(y) != len(x):
        raise InputError(argument, f"{len(x)} labels, one per image", f"{len(y)}")


def split_last(x, y, argument, vectors=False):
    """Hold out the last 10% (at least one example) as the test split, deterministically;
    ``vectors``: ``x`` holds vectors [N, D] whatever D is (a table's rows)."""
    x = (validate_vectors(x, argument=argument) if vectors
         else validate_examples(x, argument=argument))
    if len(x) < 2:
        raise InputError(argument, "at least 2 images to split into train and test", f"{len(x)}")
    check_labels(x, y, argument)
    cut = len(x) - max(1, len(x) // 10)
    return suited(Splits(
        x_train=x[:cut],
        x_test=x[cut:],
        y_train=None if y is None else y[:cut],
        y_test=None if y is None else y[cut:],
    ))
