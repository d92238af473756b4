"""Per-feature standardization that travels with a model: the statistics of its training data,
kept in its config, applied where data enters the encoder and undone by a decoder head that
models the data itself (``NormalLikelihood``), so the saved model and its exports take raw data.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from tfvae.errors import InputError


def check_feature_statistics(feature_mean, feature_scale, example_shape):
    """``(feature_mean, feature_scale)`` as lists of ``prod(example_shape)`` floats, finite, the
    scales > 0; ``(None, None)`` when neither is given."""
    if feature_mean is None and feature_scale is None:
        return None, None
    size = math.prod(example_shape)
    lists = []
    for name, values in (("feature_mean", feature_mean), ("feature_scale", feature_scale)):
        array = np.asarray(values if values is not None else [], dtype=np.float64).ravel()
        if array.size != size or not np.all(np.isfinite(array)):
            raise InputError(name, f"{size} finite values, one per feature (with "
                             f"{'feature_scale' if name == 'feature_mean' else 'feature_mean'})",
                             "none" if values is None else f"{array.size} values")
        lists.append([float(v) for v in array])
    if min(lists[1]) <= 0:
        raise InputError("feature_scale", "values > 0", f"a minimum of {min(lists[1])}")
    return tuple(lists)


def fit_feature_statistics(x):
    """The mean and standard deviation of each feature of ``x`` [N, ...] over its observed
    (not NaN) values (a constant feature's scale is 1, so it passes unchanged but for its
    shift; a feature never observed keeps 0 and 1)."""
    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    seen = ~np.isnan(flat)
    count = np.maximum(seen.sum(axis=0), 1)
    mean = np.where(seen, flat, 0.0).sum(axis=0) / count
    scale = np.sqrt(np.where(seen, (flat - mean) ** 2, 0.0).sum(axis=0) / count)
    return mean.tolist(), np.where(scale > 0, scale, 1.0).tolist()


def standardized(x, feature_mean, feature_scale):
    """``(x - mean) / scale`` for a batch ``x`` [B, *E] (``x`` itself without statistics)."""
    if feature_mean is None:
        return x
    shape = tf.shape(x)[1:]
    mean, scale = (tf.reshape(tf.constant(v, x.dtype), shape)
                   for v in (feature_mean, feature_scale))
    return (x - mean) / scale


@keras.saving.register_keras_serializable(package="tfvae")
class Standardize(keras.layers.Layer):
    """:func:`standardized` as a layer, for networks built on a model's encoder body."""

    def __init__(self, feature_mean=None, feature_scale=None, **kwargs):
        super().__init__(**kwargs)
        self.feature_mean, self.feature_scale = feature_mean, feature_scale

    def call(self, x):
        return standardized(x, self.feature_mean, self.feature_scale)

    def get_config(self):
        return {**super().get_config(), "feature_mean": self.feature_mean,
                "feature_scale": self.feature_scale}
