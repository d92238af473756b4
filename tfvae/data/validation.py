"""Checks that turn user arrays into the examples tfvae works on, or raise one clear error.

Examples are images, float32 ``[N, H, W, C]``, or vectors, float32 ``[N, D]`` (rows of a table,
feature vectors). In images, integers are grey levels 0..255 (scaled by 1/255) unless they hold
only 0 and 1; in vectors, integers are kept (counts, codes). Floats are kept. Every value must be
finite and in the support of the likelihood: [0, 1] for a Bernoulli, non-negative integers for a
count likelihood. Every bad input raises :class:`tfvae.errors.InputError` naming the argument.
"""

import contextlib
import contextvars
import math

import numpy as np

from tfvae.errors import InputError, arg

SHAPE_EXPECTED = ("images [N, H, W] or [N, H, W, C], or vectors [N, D] (read as square images "
                  "where D is a perfect square)")
# What each likelihood support takes (``Likelihood.support``).
_SUPPORT_EXPECTED = {"unit_interval": "values in [0, 1] for a Bernoulli likelihood",
                     "count": "non-negative integers for a count likelihood",
                     "eight_bit": "8-bit levels k/255 in [0, 1] for a discretized likelihood"}
# How far from a level k/255 (in levels) a value still counts as on it: float32 rounding of
# k/255, never a value between two levels.
EIGHT_BIT_TOLERANCE = 1e-3


def validate_images(x, *, argument, bernoulli):
    """Return ``x`` as float32 ``[N, H, W, C]``, or raise InputError naming ``argument``.

    Accepts ``[N, H, W]`` (adds C = 1), ``[N, H, W, C]`` and ``[N, D]`` with D a perfect square
    (to ``[N, sqrt D, sqrt D, 1]``). Integers are grey levels 0..255, scaled by 1/255, unless they
    hold only 0 and 1 (kept as binary); floats are kept. Values must be finite, and in [0, 1]
    when ``bernoulli`` is true.
    """
    return validate_values(_to_nhwc(_numeric_array(x, argument), argument), argument, bernoulli)


def validate_values(x, argument, bernoulli):
    """The values of ``x`` (any shape) as float32, checked and scaled as :func:`validate_images`
    says."""
    x = _numeric_array(x, argument)
    if np.issubdtype(x.dtype, np.integer):
        return _scale_integers(x, argument)
    x = x.astype(np.float32, copy=False)
    check_values(x, argument, bernoulli)
    return x


def _numeric_array(x, argument):
    try:
        x = np.asarray(x)
    except ValueError as exc:  # ragged nested lists
        got = f"an array-like that is not one ({exc})"
        raise InputError(argument, SHAPE_EXPECTED, got) from exc
    if x.dtype == bool:
        x = x.astype(np.uint8)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise InputError(argument, f"numeric {SHAPE_EXPECTED}", f"dtype {x.dtype}")
    return x


def _to_nhwc(x, argument):
    if x.ndim == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            got = f"shape {x.shape} ({x.shape[1]} is not a square)"
            raise InputError(argument, SHAPE_EXPECTED, got)
        x = x.reshape(len(x), side, side)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4:
        raise InputError(argument, SHAPE_EXPECTED, f"shape {x.shape} of dtype {x.dtype}")
    if 0 in x.shape:
        raise InputError(argument, f"at least one image of {SHAPE_EXPECTED}", f"shape {x.shape}")
    return x


def _scale_integers(x, argument):
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi > 255:
        raise InputError(argument, "integer grey levels in [0, 255]", f"values in [{lo}, {hi}]")
    out = x.astype(np.float32)
    if hi > 1:  # 0/1 data is already binary; anything else is 0..255 grey levels
        out /= 255
    return out


# Whether NaN stands for a missing value (allow_missing=True) rather than a data error: set
# while a dataset with holes is read, or data for a model that takes them is checked.
_MISSING_ALLOWED = contextvars.ContextVar("tfvae_missing_allowed", default=False)


@contextlib.contextmanager
def missing_allowed(allowed=True):
    """Within the block, the checks take NaN as a missing value (when ``allowed``)."""
    token = _MISSING_ALLOWED.set(bool(allowed))
    try:
        yield
    finally:
        _MISSING_ALLOWED.reset(token)


def allows_missing():
    """Whether the checks take NaN as a missing value here (see :func:`missing_allowed`)."""
    return _MISSING_ALLOWED.get()


def check_values(x, argument, bernoulli):
    """Refuse values of ``x`` that are not finite, or outside [0, 1] when ``bernoulli``."""
    check_support(x, argument, "unit_interval" if bernoulli else "real")


def check_support(x, argument, support):
    """Refuse values of ``x`` that are not finite or not in ``support`` ("real",
    "unit_interval", "count", "eight_bit"); NaN (a missing value) passes where
    :func:`allows_missing`."""
    finite = np.isfinite(x)
    if not finite.all():
        n_nan = int(np.isnan(x).sum())
        n_inf = int(x.size - finite.sum()) - n_nan
        if n_inf or not allows_missing():
            expected = ("finite values or NaN (missing)" if allows_missing() else
                        f"finite values (NaN for missing values with {arg('allow_missing', True)})")
            raise InputError(argument, expected, f"{n_nan} NaN and {n_inf} infinite values")
        x = x[finite]
    if support == "real" or x.size == 0:
        return
    lo, hi = float(x.min()), float(x.max())
    if support in ("unit_interval", "eight_bit") and (lo < 0 or hi > 1):
        raise InputError(argument, _SUPPORT_EXPECTED[support], f"values in [{lo:g}, {hi:g}]")
    if support == "count" and (lo < 0 or not np.array_equal(x, np.round(x))):
        fraction = x[x != np.round(x)]
        raise InputError(argument, _SUPPORT_EXPECTED[support],
                         f"values in [{lo:g}, {hi:g}]" if lo < 0
                         else f"fractional values such as {float(fraction[0]):g}")
    if support == "eight_bit":
        off = np.abs(x * 255 - np.round(x * 255)) > EIGHT_BIT_TOLERANCE
        if off.any():
            raise InputError(argument, _SUPPORT_EXPECTED[support],
                             f"values between two levels such as {float(x[off][0]):g}")


def is_vectors(x):
    """Whether the array ``x`` holds vectors [N, D] rather than images: two dimensions, D not a
    perfect square (a square D is read as flattened images, as MNIST's 784 pixels are)."""
    return x.ndim == 2 and math.isqrt(x.shape[1]) ** 2 != x.shape[1]


def validate_vectors(x, *, argument, support="real"):
    """Return ``x`` as float32 vectors ``[N, D]`` (integers kept as they are), its values checked
    against ``support``, or raise InputError naming ``argument``."""
    x = _numeric_array(x, argument)
    if x.ndim != 2 or 0 in x.shape:
        raise InputError(argument, "vectors [N, D] with N, D >= 1", f"shape {x.shape}")
    x = x.astype(np.float32, copy=False)
    check_support(x, argument, support)
    return x


def validate_examples(x, *, argument, support="real", square_images=True):
    """Images as :func:`validate_images` returns them, or vectors as :func:`validate_vectors`
    does (see :func:`is_vectors`), their values checked against ``support``. With
    ``square_images`` False, a float [N, D] array stays vectors whatever D is: examples already
    read (a table's rows) keep their shape."""
    x = _numeric_array(x, argument)
    if is_vectors(x) or (x.ndim == 2 and not square_images
                         and np.issubdtype(x.dtype, np.floating)):
        return validate_vectors(x, argument=argument, support=support)
    images = validate_images(x, argument=argument, bernoulli=False)
    check_support(images, argument, support)
    return images


def with_mask(x, mask, argument):
    """The examples ``x`` (validated as :func:`validate_examples` reads them) with NaN, a missing
    value, where ``mask`` (one 0/1 per value of ``x``, 1 for observed) is 0."""
    x = validate_examples(x, argument=argument)
    mask = np.asarray(mask)
    if mask.size != x.size or not np.isin(mask, (0, 1)).all():
        raise InputError(f"{argument} mask", f"0 (missing) or 1 (observed) for each of the "
                         f"{x.size} values of x", f"shape {mask.shape}" if mask.size != x.size
                         else "values other than 0 and 1")
    x = x.copy()
    x[mask.reshape(x.shape) == 0] = np.nan
    return x


def suggested_likelihood(*arrays):
    """The likelihood that suits the examples of ``arrays`` (float32, as validated): a Bernoulli
    for values in [0, 1], else a Gaussian of unbounded mean."""
    unit = all(x.size == 0 or np.isnan(x).all() or (np.nanmin(x) >= 0 and np.nanmax(x) <= 1)
               for x in arrays)
    return "bernoulli" if unit else "normal"


def load_with_run_settings(name, settings, model_shape):
    """The dataset ``name`` (``dataset``, another than a run's) loaded with the run's other data
    ``settings`` (``load_dataset``'s arguments); one that a setting does not apply to, or whose
    examples hold another number of values than a model of examples ``model_shape`` takes
    (None: any), is refused naming ``dataset``."""
    from tfvae.data import load_dataset

    try:
        dataset = load_dataset(**{**settings, "name": name})
    except InputError as exc:
        if exc.argument not in settings or exc.argument == "name":
            raise
        raise InputError("dataset", "a dataset that the run's setting "
                         f"{arg(exc.argument, settings[exc.argument])} applies to",
                         f"{name!r}, which takes {arg(exc.argument)} {exc.expected}") from None
    shape = dataset.image_shape
    if model_shape and math.prod(shape) != math.prod(model_shape):
        raise InputError("dataset", f"examples of {math.prod(model_shape):,} values, shape "
                         f"{tuple(model_shape)}, as the run's model takes",
                         f"{name!r}, whose examples have shape {tuple(shape)}")
    return dataset


def model_images(model, x, argument="x"):
    """``x`` as a batch of the examples ``model`` takes, float32 [N, *model.image_shape].

    Any array whose examples hold the model's number of values is accepted ([N, 28, 28] or
    [N, 784] for a 28x28x1 model); images are read as :func:`validate_images` reads them, vectors
    as :func:`validate_vectors` does, and the values must be in the support of the model's
    likelihood; NaN is a missing value for a model that takes them (``allow_missing``).
    """
    if getattr(model, "allow_missing", False) and not allows_missing():
        with missing_allowed():
            return model_images(model, x, argument)
    array = _array(x, argument, "a batch of images [N, *image_shape]")
    if getattr(model, "image_shape", None) is None:
        # A model of any event shape (one that is not a tfvae model): examples as they are.
        if array.ndim < 2 or len(array) == 0:
            raise InputError(argument, "examples [N, ...] with N >= 1", f"shape {array.shape}")
        return validate_values(array, argument, bernoulli=False)
    expected_shape = tuple(model.image_shape)
    size = math.prod(expected_shape)
    if array.ndim < 2 or math.prod(array.shape[1:]) != size or len(array) == 0:
        expected = (f"N >= 1 rows of {size} values, [N, {size}], as the model takes"
                    if len(expected_shape) == 1 else
                    f"N >= 1 images of shape {expected_shape} (or [N, {size}]), as the model takes")
        if array.ndim == 0:  # None, a string, a number: not a batch at all
            raise InputError(argument, expected, _what(x))
        # Shown as an image shape [H, W, C] where it reads as one, beside the model's.
        given = tuple(array.shape[1:]) + ((1,) if array.ndim == 3 and len(expected_shape) > 1
                                          else ())
        raise InputError(argument, expected, f"shape {given} for {len(array)} examples")
    support = model.decoder.likelihood.support
    if len(expected_shape) == 1 or support == "count":  # integers are counts or codes, kept
        values = validate_vectors(array.reshape(len(array), size), argument=argument,
                                  support=support)
        return values.reshape(len(array), *expected_shape)
    images = validate_images(array.reshape(len(array), *expected_shape), argument=argument,
                             bernoulli=False)
    check_support(images, argument, support)
    return images.reshape(len(array), *expected_shape)


def model_latents(model, z, argument="z"):
    """``z`` as float32 latents [..., D] of ``model`` (D its ``latent_dim``), finite."""
    array = _array(z, argument, f"latents [..., {model.latent_dim}]")
    expected = f"finite latents [..., {model.latent_dim}] (the model's latent_dim)"
    if array.ndim == 0 or array.shape[-1] != model.latent_dim or array.size == 0:
        raise InputError(argument, expected, _what(z) if array.ndim == 0
                         else f"shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InputError(argument, expected, f"dtype {array.dtype}")
    array = array.astype(np.float32)
    check_values(array, argument, bernoulli=False)
    return array


def _array(x, argument, expected):
    try:
        return np.asarray(x)
    except ValueError as exc:  # ragged nested lists
        raise InputError(argument, expected, f"an array-like that is not one ({exc})") from exc


def _what(x):
    """A short description of something that is not an array."""
    return "None" if x is None else f"a {type(x).__name__}"
