"""Missing values in a model's data, as NaN: the encoder reads a missing entry as 0 (the
feature's training mean, once standardized), and p(x|z) scores the observed entries only, so
that every bound the model computes is on log p(x_observed): with ``objective="iwae"`` the MIWAE
bound of Mattei & Frellsen (2019), the importance-weighted bound of the observed part.
"""

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.errors import InputError

tfd = tfp.distributions


def observed(x):
    """Whether each entry of ``x`` is observed (not NaN)."""
    return tf.logical_not(tf.math.is_nan(x))


def filled(x, value=0.0):
    """``x`` with each missing entry replaced by ``value``."""
    return tf.where(tf.math.is_nan(x), tf.cast(value, x.dtype), x)


def entry_log_prob(p_x, x):
    """log p(x_j | z) of each entry j of ``x``: [*B, *E] for a p(x|z) of event shape E."""
    if hasattr(p_x, "column_log_prob"):  # a table's distribution, column by column
        return p_x.column_log_prob(x)
    if isinstance(p_x, tfd.Independent):
        return p_x.distribution.log_prob(x)
    raise InputError("likelihood", "a p(x|z) that scores each entry of x (a tfd.Independent "
                     "over the entries, or a distribution with column_log_prob) for data with "
                     "missing values", type(p_x).__name__)


class ObservedPart:
    """p(x|z) whose ``log_prob(x)`` is that of x's observed entries, sum_j observed log
    p(x_j | z); all else (mean, sample, ...) is p(x|z)'s own."""

    def __init__(self, p_x):
        self.p_x = p_x

    def log_prob(self, x):
        # Every entry is scored at a value in the support (0), then the missing ones dropped:
        # a NaN scored and masked would still give NaN gradients.
        log_probs = tf.where(observed(x), entry_log_prob(self.p_x, filled(x)), 0.0)
        rank = len(self.p_x.event_shape)
        return tf.reduce_sum(log_probs, axis=list(range(-rank, 0)))

    def __getattr__(self, name):
        return getattr(self.p_x, name)
