"""The checks of ``tfvae.data.validation`` as TensorFlow ops, for data that only a graph sees: a
served model's requests and the batches of a user's ``tf.data`` pipeline.

A failed check raises InvalidArgumentError with a message that names the input, what was
expected and what was given; TF Serving answers it as HTTP 400. XLA drops these ops, so they run
outside XLA-compiled steps (in the export's signatures and the input pipeline).
"""

import math
import numbers

import numpy as np
import tensorflow as tf

from tfvae.data.validation import EIGHT_BIT_TOLERANCE
from tfvae.errors import InputError

# Set on datasets whose batches tfvae made from checked arrays: nothing to check again.
CHECKED = "tfvae_checked"


def graph_assert(condition, message, *data):
    return tf.debugging.Assert(condition, [message, *data], summarize=16)


def after_checks(tensor, checks):
    """``tensor`` once every check has passed: later ops depend on them, so bad input fails here."""
    with tf.control_dependencies(checks):
        return tf.identity(tensor)


def _check_trailing_shape(tensor, name, dtype, trailing):
    """Fail unless ``tensor`` is [batch, *trailing].

    The shapes are compared as strings: the signature declares the rank, so graph optimization
    would fold a numeric rank check to "true", but TF Serving feeds whatever shape it receives.
    """
    expected = " ".join(str(d) for d in trailing)
    got = tf.strings.reduce_join(tf.strings.as_string(tf.shape(tensor)[1:]), separator=" ")
    shape = ", ".join(["batch", *map(str, trailing)])
    return graph_assert(tf.equal(got, expected),
                   f"{name}: expected {dtype} of shape [{shape}], got shape", tf.shape(tensor))


def check_images(x, image_shape, support, missing=False):
    """``x`` [B, *E] after the shape and finiteness checks, and the values in the likelihood's
    ``support``: [0, 1] for a Bernoulli ("unit_interval"), non-negative integers ("count"),
    levels k/255 in [0, 1] ("eight_bit").
    With ``missing``, NaN (a missing value) passes."""
    given = x = after_checks(x, [_check_trailing_shape(x, "x", "float32 images", image_shape)])
    if missing:
        x = tf.where(tf.math.is_nan(x), tf.zeros_like(x), x)  # 0 is in every support
        x = tf.debugging.assert_all_finite(x, "x: expected finite values or NaN (missing), got "
                                              "infinity")
    else:
        x = tf.debugging.assert_all_finite(x, "x: expected finite pixel values, got NaN or "
                                              "infinity")
    low, high = tf.reduce_min(x), tf.reduce_max(x)
    empty = tf.equal(tf.size(x), 0)
    if support == "unit_interval":
        x = after_checks(x, [graph_assert(
            tf.logical_or(empty, tf.logical_and(low >= 0.0, high <= 1.0)),
            "x: expected pixel values in [0, 1] for a Bernoulli model, got values in", low, high)])
    elif support == "count":
        whole = tf.reduce_all(tf.equal(x, tf.round(x)))
        x = after_checks(x, [graph_assert(
            tf.logical_or(empty, tf.logical_and(low >= 0.0, whole)),
            "x: expected non-negative integers for a count model, got values in", low, high)])
    elif support == "eight_bit":
        x = after_checks(x, [graph_assert(
            tf.logical_or(empty, tf.reduce_all(_on_eight_bit_levels(x))),
            "x: expected 8-bit levels k/255 in [0, 1] for a discretized model, got values in",
            low, high)])
    return after_checks(given, [x]) if missing else x


def check_latents(z, latent_dim):
    z = after_checks(z, [_check_trailing_shape(z, "z", "float32 latents", [latent_dim])])
    return tf.debugging.assert_all_finite(z, "z: expected finite values, got NaN or infinity")


def check_seeds(seed, x=None):
    checks = [_check_trailing_shape(seed, "seed", "int64 seeds", [])]
    if x is not None:
        checks.append(graph_assert(tf.equal(tf.shape(seed)[0], tf.shape(x)[0]),
                              "seed: expected one seed per image of x, got seeds and images",
                              tf.shape(seed)[0], tf.shape(x)[0]))
    return after_checks(seed, checks)


def check_labels(label, num_classes, x=None):
    """``label`` [B] (int64) after the shape, range [0, num_classes) and (with ``x``) count checks."""
    checks = [_check_trailing_shape(label, "label", "int64 class labels", [])]
    if x is not None:
        checks.append(graph_assert(tf.equal(tf.shape(label)[0], tf.shape(x)[0]),
                              "label: expected one label per example, got labels and examples",
                              tf.shape(label)[0], tf.shape(x)[0]))
    label = after_checks(label, checks)
    low, high = tf.reduce_min(label), tf.reduce_max(label)
    return after_checks(label, [graph_assert(
        tf.logical_or(tf.equal(tf.size(label), 0),
                      tf.logical_and(low >= 0, high < num_classes)),
        f"label: expected class labels from 0 to {num_classes - 1}, got values from", low, high)])


# The same checks as values, for runtimes that drop asserts (LiteRT, ONNX): whether each row is
# good, [B] bool, from ops those runtimes have. |v| <= the largest float is false for NaN and
# infinity alike.
_FLOAT_MAX = float(tf.float32.max)


def _all_per_row(condition):
    return tf.reduce_all(tf.reshape(condition, [tf.shape(condition)[0], -1]), axis=1)


def valid_images(x, support, missing=False):
    """Rows of ``x`` [B, *E] whose values are finite and in the likelihood's ``support`` (as
    :func:`check_images` says); with ``missing``, NaN too."""
    if missing:
        x = tf.where(tf.math.is_nan(x), tf.zeros_like(x), x)
    if support == "unit_interval":
        return _all_per_row(tf.logical_and(x >= 0.0, x <= 1.0))
    if support == "eight_bit":
        return _all_per_row(_on_eight_bit_levels(x))
    if support == "count":
        return _all_per_row(tf.logical_and(tf.logical_and(x >= 0.0, x <= _FLOAT_MAX),
                                           tf.equal(x, tf.round(x))))
    return _all_per_row(tf.abs(x) <= _FLOAT_MAX)


def _on_eight_bit_levels(x):
    levels = x * 255.0
    return tf.logical_and(tf.logical_and(x >= 0.0, x <= 1.0),
                          tf.abs(levels - tf.round(levels)) <= EIGHT_BIT_TOLERANCE)


def valid_latents(z):
    """Rows of ``z`` [B, D] whose values are finite."""
    return _all_per_row(tf.abs(z) <= _FLOAT_MAX)


def valid_labels(label, num_classes):
    """Labels [B] in [0, num_classes)."""
    return tf.logical_and(label >= 0, label < num_classes)


def flat_images(shape, image_shape, argument="x"):
    """Whether batches of static ``shape`` hold ``image_shape``'s pixels in another shape ([B, 784]
    for [28, 28, 1]) and need a reshape; raise InputError naming ``argument`` if they hold other
    pixels. Unknown dimensions: False (the graph's checks see them)."""
    given = tf.TensorShape(shape)
    image_shape = tuple(image_shape)
    if given.rank is None or None in given[1:] or tuple(given[1:]) == image_shape:
        return False
    if math.prod(given[1:]) != math.prod(image_shape):
        raise InputError(argument, f"batches of images {image_shape} (or their "
                         f"{math.prod(image_shape)} pixels flat), as the model takes",
                         f"batches of shape {tuple(given[1:])}")
    return True


def checked_batches(dataset, image_shape, support, num_classes=0, *, unlabelled=False,
                    argument="x", missing=False):
    """``dataset`` whose batches of x (alone or first of a tuple) are checked as the export
    checks its inputs, after a reshape of examples that hold ``image_shape``'s pixels
    ([B, 784] for [28, 28, 1]); for a conditional model (``num_classes`` > 0), the labels y of
    (x, y) batches too. ``unlabelled``: (x, y) batches are refused, as the model would ignore
    y. Elements that are not tensors or tuples of them (dicts) are refused, naming
    ``argument``."""
    if getattr(dataset, CHECKED, False):
        return dataset
    image_shape = tuple(image_shape)
    spec = dataset.element_spec
    first = spec[0] if isinstance(spec, tuple) and spec else spec
    if not isinstance(first, tf.TensorSpec):
        raise InputError(argument, "a tf.data.Dataset of image batches x, or of (x, y) tuples "
                         "for a conditional model", f"elements {spec}")
    if unlabelled and isinstance(spec, tuple) and len(spec) > 1:
        raise InputError(argument, "batches of images alone for an unconditional model "
                         "(num_classes=0), which would ignore labels", f"elements {spec}")
    flat = flat_images(first.shape, image_shape, argument)

    def check(*batch):
        x = tf.cast(batch[0], tf.float32)
        if flat:
            x = tf.reshape(x, [-1, *image_shape])
        x = check_images(x, image_shape, support, missing)
        if num_classes:
            if len(batch) == 1:
                raise InputError("x", "(x, y) batches of images and class labels for a "
                                 f"conditional model (num_classes={num_classes})",
                                 "batches of images alone")
            y = check_labels(tf.reshape(tf.cast(batch[1], tf.int64), [-1]), num_classes, x)
            return (x, y, *batch[2:])
        return x if len(batch) == 1 else (x, *batch[1:])

    return dataset.map(check)


def mark_checked(dataset):
    """``dataset``, marked as holding checked images (see :func:`checked_batches`)."""
    setattr(dataset, CHECKED, True)
    return dataset


def checked_model_data(model, data, y=None, argument="x"):
    """What ``model.fit``, ``evaluate`` and ``predict`` take, checked before any step: arrays at
    once (:func:`tfvae.data.validation.model_images`), a ``tf.data`` pipeline batch by batch; a
    conditional model's labels ``y`` with them, and no labels for a model that would ignore
    them."""
    from tfvae.checks import check_labels as check_label_array
    from tfvae.data.validation import model_images

    if isinstance(data, tf.data.Dataset):
        return checked_batches(data, model.image_shape, model.decoder.likelihood.support,
                               model.num_classes,
                               unlabelled=not (model.conditional or model.needs_example_index),
                               argument=argument, missing=getattr(model, "allow_missing", False))
    if data is None or isinstance(data, (str, bytes, dict, numbers.Number)):
        raise InputError(argument, "images [N, H, W(, C)] or vectors [N, D], or a "
                         "tf.data.Dataset of their batches",
                         "None" if data is None else f"a {type(data).__name__}")
    if y is not None and not (model.conditional or model.needs_example_index):
        raise InputError("y", "no labels for an unconditional model (num_classes=0), which "
                         "would ignore them", f"{np.size(y)} label(s)")
    if isinstance(data, (np.ndarray, list)):
        data = model_images(model, data, argument)
        if model.conditional and y is None:
            raise InputError("y", "class labels beside the images for a conditional model "
                             f"(num_classes={model.num_classes})", "images alone")
        if model.conditional:
            check_label_array("y", y, model.num_classes, len(data))
    return data
