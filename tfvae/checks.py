"""Checks of user arguments, each raising :class:`tfvae.errors.InputError` on bad input.

Every entry point (the Python API and the CLI alike) checks its arguments here, so a count
accepts the same values everywhere: Python and numpy integers, never ``bool``.
"""

import math
import numbers
import re

from tfvae.errors import InputError

# What numpy's and Keras's global seeding take (``keras.utils.set_random_seed``).
MAX_SEED = 2 ** 32 - 1
# Counts and versions stored as TensorFlow's and TF Serving's int64.
MAX_INT64 = 2 ** 63 - 1
# The most weights a model may have: 2^27 float32 weights are 512 MiB, and training holds four
# times as much (the gradients and Adam's two moments), which a machine of 4 GiB still has.
MAX_WEIGHTS = 2 ** 27
# The most float32 values one array that a count sets the size of may hold: 4 GiB.
MAX_VALUES = 2 ** 30
# A name that is one path component on every file system and a model name TF Serving takes:
# letters, digits, '_', '.' and '-', starting with a letter or digit, at most 255 bytes.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")


def is_integer(value):
    """Whether ``value`` is an integer of any kind (numpy's included), bool excluded."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(argument, value, minimum=1, maximum=None, *, optional=False):
    """``value`` as a Python int in [minimum, maximum]; ``None`` passes when ``optional``."""
    if value is None and optional:
        return None
    if not is_integer(value) or value < minimum or (maximum is not None and value > maximum):
        raise InputError(argument, _integer_range(value, minimum, maximum), repr(value))
    return int(value)


def _integer_range(value, minimum, maximum):
    """What an integer argument must be: the bound ``value`` breaks, or both for a non-integer."""
    if is_integer(value) and maximum is not None and value > maximum:
        return f"an integer <= {maximum:,}"
    if is_integer(value) or maximum is None:
        return f"an integer >= {minimum}"
    return f"an integer from {minimum} to {maximum:,}"


def check_count(argument, value, values_each=1, *, minimum=1, what="outputs"):
    """A count of things of ``values_each`` float32 values each (an image: its pixels), as an
    int: from ``minimum`` to as many as 4 GiB holds (``MAX_VALUES``)."""
    maximum = max(minimum, MAX_VALUES // max(1, values_each))
    if not is_integer(value) or not minimum <= value <= maximum:
        raise InputError(argument, _integer_range(value, minimum, maximum)
                         + (f" (at most 4 GiB of {what} of {values_each:,} float32 values each)"
                            if is_integer(value) and value > maximum else ""), repr(value))
    return int(value)


def check_seed(argument, value, *, optional=False):
    """A seed: an integer from 0 to 2^32 - 1, what numpy and Keras take."""
    return check_int(argument, value, minimum=0, maximum=MAX_SEED, optional=optional)


def check_name(argument, value):
    """``value`` if it is a name of letters, digits, '_', '.' and '-' (see ``_NAME``)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InputError(argument, "a name of 1 to 255 letters, digits, '_', '.' or '-', "
                         "starting with a letter or digit", repr(value))
    return value


def check_weights(argument, value, weights, settings):
    """Refuse a model of more than ``MAX_WEIGHTS`` weights, naming the ``argument`` that made
    it so large, its ``value`` and the other ``settings`` it was counted with."""
    if weights > MAX_WEIGHTS:
        raise InputError(argument, f"a model of at most {MAX_WEIGHTS:,} weights (512 MiB of "
                         "float32; training needs four times as much)",
                         f"{value!r}, which with {settings} makes about {weights:,} weights "
                         f"({4 * weights / 2 ** 30:,.1f} GiB, {16 * weights / 2 ** 30:,.1f} GiB "
                         "to train)")


def check_choice(argument, value, choices):
    """``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(argument, f"one of {', '.join(map(str, choices))}", repr(value))
    return value


def check_bool(argument, value):
    """``value`` as a bool if it is True or False (numpy's included)."""
    import numpy as np

    if not isinstance(value, (bool, np.bool_)):
        raise InputError(argument, "True or False", repr(value))
    return bool(value)


def check_number(argument, value, *, above=None, at_least=None, below=None):
    """``value`` as a finite float with the bounds given (``above``/``below`` exclusive)."""
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value)
          and (above is None or value > above)
          and (at_least is None or value >= at_least)
          and (below is None or value < below))
    if not ok:
        bounds = [f"> {above}" if above is not None else None,
                  f">= {at_least}" if at_least is not None else None,
                  f"< {below}" if below is not None else None]
        expected = " and ".join(b for b in bounds if b)
        raise InputError(argument, f"a finite number{' ' + expected if expected else ''}",
                         repr(value))
    return float(value)


def check_labels(argument, labels, num_classes=None, count=None):
    """Class labels as an int32 numpy array [count]: integers in [0, num_classes) (>= 0 when
    ``num_classes`` is None), one per example. A single integer stands for ``count`` copies of
    itself (``sample(64, labels=7)``)."""
    import numpy as np

    expected = ("class labels, integers >= 0" if num_classes is None
                else f"class labels, integers from 0 to {num_classes - 1}")
    if is_integer(labels):
        if labels < 0 or (num_classes is not None and labels >= num_classes):
            raise InputError(argument, expected, repr(labels))  # before numpy, whose ints end
        labels = np.full([1 if count is None else count], labels)
    try:
        array = np.asarray(labels)
    except (TypeError, ValueError):
        raise InputError(argument, expected, repr(labels)) from None
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)  # labels read back from float arrays: 7.0 is 7
    if array.dtype.kind not in "iu" or array.ndim != 1:
        raise InputError(argument, f"{expected}, one per example",
                         f"an array of {array.dtype} with shape {array.shape}")
    if count is not None and len(array) != count:
        raise InputError(argument, f"{count} labels, one per example", f"{len(array)}")
    if array.size and (array.min() < 0 or (num_classes is not None
                                           and array.max() >= num_classes)):
        raise InputError(argument, expected, f"values from {array.min()} to {array.max()}")
    return array.astype(np.int32)


def check_image_size(argument, value, *, optional=False):
    """``value`` as ``[H, W]``, two integers >= 1 (a size to resize images to); a list, as
    config.json stores it. ``None`` passes when ``optional``."""
    if value is None and optional:
        return None
    items = None if isinstance(value, (str, bytes)) else _as_list(value)
    if items is None or len(items) != 2 or not all(is_integer(v) and v >= 1 for v in items):
        raise InputError(argument, "two integers >= 1, the height and width H W", repr(value))
    return [int(v) for v in items]


def _as_list(value):
    try:
        return list(value)
    except TypeError:
        return None


def check_known(argument, value, get):
    """``value`` if Keras knows it (``get`` is ``keras.activations.get`` or the like)."""
    try:
        get(value)
    except (ValueError, TypeError):
        raise InputError(argument, "a name Keras knows (or a Keras object)",
                         repr(value)) from None
    return value


def check_image_shape(argument, image_shape):
    """A model's example shape as a tuple: (H, W, C) for images, (D,) for vectors (rows of a
    table, feature vectors)."""
    try:
        shape = tuple(image_shape)
    except TypeError:
        shape = None
    if not shape or len(shape) not in (1, 3) or not all(is_integer(d) and d >= 1 for d in shape):
        raise InputError(argument, "an image shape (H, W, C) of three positive integers "
                         "such as (28, 28, 1), or a vector shape (D,)", repr(image_shape))
    return tuple(int(d) for d in shape)
