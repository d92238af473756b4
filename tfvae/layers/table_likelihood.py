"""The decoder head of heterogeneous tables: one distribution per column, chosen by its type.

As in HI-VAE (Nazabal et al., 2020), p(x|z) = prod_j p_j(x_j | z) where column j's distribution
follows its type (``tfvae.data.tables.TYPES``):

- ``"real"``: Normal(m_j + s_j mu_j, s_j sigma_j), mu_j unbounded, sigma_j = softplus(.) + MIN_SCALE
  output by the network, learned per column or fixed (the model's ``gaussian_scale``, as
  :class:`~tfvae.layers.likelihoods.NormalLikelihood`); m_j, s_j the model's ``feature_mean``
  and ``feature_scale`` of that column when it has them (else 0 and 1);
- ``"binary"``: Bernoulli(sigmoid(l_j)), x_j in {0, 1};
- ``"count"``: Poisson(softplus(r_j) + MIN_SCALE), as :class:`PoissonLikelihood`;
- ``"categorical"``: Categorical over the column's K_j categories (logits, K_j of them), x_j the
  category's code 0..K_j - 1 (as ``tfvae.data.tables`` codes them).

One dense map from the hidden units gives every parameter, laid out column by column (see
:attr:`TableLikelihood.parameter_slices`): a real column's mean (and, with ``gaussian_scale``
"network", its raw scale next), a binary column's logit, a count column's raw rate, a
categorical column's K_j logits.

The distribution (:class:`TableDistribution`) has batch shape [*B] and event shape E (the
model's ``image_shape``, prod(E) columns, usually [D]); x holds every column as float32 (codes,
counts and 0/1 as floats). Its ``log_prob`` is the sum of the columns' exact log-probabilities;
its ``mean`` is, per column, the Normal's mean, the Bernoulli's probability, the Poisson's rate
and, for a categorical column, the most probable code (the argmax of its logits): an expected
code would mean nothing, and a reconstruction should be a category.
"""

import math
import numbers

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import noise
from tfvae.errors import InputError
from tfvae.layers.likelihoods import MIN_SCALE, Likelihood, positive_scale
from tfvae.layers.table_distribution import (PAD_LOGIT, TYPES, TableDistribution, _Layout,
                                             log_factorial1p)

tfd = tfp.distributions
# log_factorial1p: the log-factorial its counts are scored with, exported beside the head.
__all__ = ["TableLikelihood", "TableDistribution", "log_factorial1p", "table_columns"]



def _name(column, index):
    return repr(column.get("name", f"column {index}"))


def table_columns(columns, size):
    """``columns`` checked and copied as dicts {"name", "type", "categories"}, one per each of the
    ``size`` values of x: an ``InputError("columns", ...)`` names what is wrong.

    Each may be a dict or an object with those attributes (``tfvae.data.tables.Column``); a
    categorical column needs its categories (a list, K >= 1 of them), the others take none.
    """
    expected = (f"{size} table columns (one per value of x), each a dict with a 'type' of "
                f"{', '.join(TYPES)}")
    if columns is None:
        raise InputError("columns", expected + " for likelihood 'table'", "none")
    if isinstance(columns, (str, bytes, dict)) or not hasattr(columns, "__iter__"):
        raise InputError("columns", expected, repr(columns))
    checked = []
    for index, column in enumerate(columns):
        if not isinstance(column, dict):
            column = {key: getattr(column, key) for key in ("name", "type", "categories")
                      if hasattr(column, key)}
        column = dict(column)
        kind = column.get("type")
        if kind not in TYPES:
            raise InputError("columns", f"a type of {', '.join(TYPES)} for column "
                             f"{_name(column, index)}", repr(kind))
        categories = column.get("categories")
        if kind == "categorical":
            if (categories is None or isinstance(categories, (str, bytes, dict))
                    or not hasattr(categories, "__len__") or len(categories) < 1):
                raise InputError("columns", "the list of its categories (at least 1) for "
                                 f"categorical column {_name(column, index)}", repr(categories))
            categories = [c if isinstance(c, (str, numbers.Number)) else str(c)
                          for c in categories]
            categories = [c.item() if isinstance(c, np.generic) else c for c in categories]
        elif categories is not None:
            raise InputError("columns", f"no categories for {kind} column "
                             f"{_name(column, index)}", repr(categories))
        checked.append({"name": str(column.get("name", f"column {index}")), "type": kind,
                        "categories": None if categories is None else list(categories)})
    if len(checked) != size:
        raise InputError("columns", expected, f"{len(checked)} columns")
    return checked


@keras.saving.register_keras_serializable(package="tfvae")
class TableLikelihood(Likelihood):
    """Hidden units [N, H] -> p(x|z) = prod over columns of the column type's distribution
    (:class:`TableDistribution`; see the module's notes), event shape E with prod(E) columns.

    ``columns``: one {"name", "type", "categories"} per value of x, in x's order (a model's
    ``columns``); ``scale``: the real columns' standard deviations, "network" (output by the
    network), "learned" (one free value per real column) or a positive float (fixed);
    ``feature_mean``/``feature_scale`` [prod E]: the model's feature statistics, used for the
    real columns only (as :class:`NormalLikelihood` uses them: the network models standardized
    values). Other columns' entries are ignored: codes, counts and 0/1 are modelled as they are.

    ``support`` is "real": the head takes any finite values; that each column holds values of its
    type (0/1, counts, codes below K) is the data side's to check. A categorical value that is
    not one of its column's codes gets log-probability -inf.
    """

    support = "real"

    def __init__(self, event_shape, columns=None, scale="network", min_scale=MIN_SCALE,
                 feature_mean=None, feature_scale=None, **kwargs):
        super().__init__(event_shape, **kwargs)
        self.columns = table_columns(columns, math.prod(self.event_shape))
        if not (scale in ("network", "learned") or (
                isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale > 0)):
            raise InputError("gaussian scale", "'network', 'learned' or a positive float",
                             repr(scale))
        self.scale = scale
        self.min_scale = float(min_scale)
        self.feature_mean = None if feature_mean is None else [float(v) for v in feature_mean]
        self.feature_scale = None if feature_scale is None else [float(v) for v in feature_scale]
        size = math.prod(self.event_shape)
        if (self.feature_mean is None) != (self.feature_scale is None):
            raise InputError("feature_scale" if self.feature_scale is None else "feature_mean",
                             "feature_mean and feature_scale given together", "one of them")
        for argument, values in (("feature_mean", self.feature_mean),
                                 ("feature_scale", self.feature_scale)):
            if values is not None and len(values) != size:
                raise InputError(argument, f"{size} values, one per column", f"{len(values)}")
        types = [c["type"] for c in self.columns]
        self.num_categories = [len(c["categories"]) if c["type"] == "categorical" else 0
                               for c in self.columns]
        self.layout = _Layout(types, self.num_categories)
        # The dense map's outputs, column by column.
        sizes = {"real": 2 if self.scale == "network" else 1, "binary": 1, "count": 1}
        self.parameter_slices, start = [], 0
        for column, k in zip(self.columns, self.num_categories):
            width = k if column["type"] == "categorical" else sizes[column["type"]]
            self.parameter_slices.append(slice(start, start + width))
            start += width
        self.num_parameters = start
        self._indices = self._parameter_indices()

    def _parameter_indices(self):
        """Where in the dense map's outputs (one extra output, the pad logit, at the end) each
        group of parameters is."""
        slices, layout = self.parameter_slices, self.layout
        pad = self.num_parameters
        indices = {
            "loc": [slices[j].start for j in layout.real],
            "raw_scale": [slices[j].start + 1 for j in layout.real],
            "logits": [slices[j].start for j in layout.binary],
            "raw_rate": [slices[j].start for j in layout.count],
            "category_logits": [[slices[j].start + i if i < k else pad
                                 for i in range(layout.max_categories)]
                                for j, k in zip(layout.categorical, layout.categories)],
        }
        return indices

    @classmethod
    def from_settings(cls, event_shape, name="likelihood", gaussian_scale="network",
                      feature_mean=None, feature_scale=None, columns=None, **settings):
        return cls(event_shape, columns=columns, scale=gaussian_scale,
                   feature_mean=feature_mean, feature_scale=feature_scale, name=name)

    def build(self, input_shape):
        flat = (input_shape[0], math.prod(input_shape[1:]))
        self.params = keras.layers.Dense(self.num_parameters, name="params")
        self.params.build(flat)
        if self.scale == "learned" and self.layout.real:
            self.column_raw_scale = self.add_weight(
                name="column_raw_scale", shape=(len(self.layout.real),), initializer="zeros")

    def call(self, h, batch_shape=None):
        if len(h.shape) > 2:
            h = tf.reshape(h, [-1, math.prod(h.shape[1:])])
        raw = tf.cast(self.params(h), tf.float32)
        leading = tf.shape(raw)[:1] if batch_shape is None else batch_shape
        raw = tf.concat([raw, tf.fill(tf.stack([tf.shape(raw)[0], 1]), PAD_LOGIT)], axis=-1)
        layout, indices = self.layout, self._indices

        def group(name, shape=()):
            index = np.asarray(indices[name], np.int32)
            values = tf.gather(raw, index.reshape(-1), axis=-1)
            return tf.reshape(values, tf.concat([leading, [len(index)], shape], axis=0))

        loc = group("loc")
        if self.scale == "network" and layout.real:
            scale = positive_scale(group("raw_scale"), self.min_scale)
        elif self.scale == "learned" and layout.real:
            scale = positive_scale(self.column_raw_scale, self.min_scale)
        else:
            scale = tf.fill([len(layout.real)], float(self.scale) if layout.real else 1.0)
        if self.feature_mean is not None and layout.real:
            shift = tf.constant([self.feature_mean[j] for j in layout.real], tf.float32)
            stretch = tf.constant([self.feature_scale[j] for j in layout.real], tf.float32)
            loc, scale = shift + stretch * loc, stretch * scale
        return TableDistribution(
            loc=loc, scale=scale, logits=group("logits"),
            rate=positive_scale(group("raw_rate")),
            category_logits=group("category_logits", [layout.max_categories]),
            types=layout.types, num_categories=layout.num_categories,
            event_shape=self.event_shape)

    def draw(self, p_x, seed):
        """One x ~ ``p_x`` [*B, *E] for a stateless ``seed`` [2], by ``tfvae.noise``: a real
        column is mean + sd * a standard normal, a binary one ``noise.bernoulli``, a count TFP's
        Poisson sampler (as :class:`PoissonLikelihood`), a categorical one the Gumbel-max code
        argmax(logits - log(-log(u))) for uniforms u."""
        layout = p_x._layout
        seeds = tf.unstack(noise.split(seed, 4))
        batch = p_x.batch_shape_tensor()
        rows = tf.reduce_prod(batch)

        def flat(values, *tail):
            values = tf.broadcast_to(values, tf.concat([batch, tf.shape(values)[-1 - len(tail):]],
                                                       axis=0))
            return tf.reshape(values, [rows, -1, *tail] if tail else [rows, -1])

        groups = []
        if layout.real:
            loc, scale = flat(p_x.loc), flat(p_x.scale)
            groups.append(loc + scale * noise.standard_normal(
                seeds[0], [], rows, [len(layout.real)]))
        if layout.binary:
            groups.append(noise.bernoulli(tf.sigmoid(flat(p_x.logits)), seeds[1]))
        if layout.count:
            groups.append(tf.cast(tfd.Poisson(rate=flat(p_x.rate)).sample(seed=seeds[2]),
                                  tf.float32))
        if layout.categorical:
            logits = flat(p_x.category_logits, layout.max_categories)
            uniform = noise._uniform(tf.shape(logits), seeds[3])
            groups.append(tf.cast(tf.argmax(logits - tf.math.log(-tf.math.log(uniform)),
                                            axis=-1, output_type=tf.int32), tf.float32))
        x = tf.gather(tf.concat(groups, axis=-1), layout.inverse, axis=-1)
        return tf.reshape(x, tf.concat([batch, self.event_shape], axis=0))

    def get_config(self):
        return {**super().get_config(), "columns": self.columns, "scale": self.scale,
                "min_scale": self.min_scale, "feature_mean": self.feature_mean,
                "feature_scale": self.feature_scale}
