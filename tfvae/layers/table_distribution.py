"""The distribution of a heterogeneous table's rows (:class:`TableDistribution`): a Normal,
Bernoulli, Poisson or Categorical per column, by the column's type, with an exact joint
log-probability; the head that makes it is :mod:`tfvae.layers.table_likelihood`."""

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.likelihoods import MIN_SCALE

tfd = tfp.distributions

TYPES = ("real", "binary", "count", "categorical")
# The logit of the categories a column does not have, where the logits of all categorical
# columns are padded to the largest K: exp of it underflows to exactly 0 next to any real logit,
# so the softmax, its log and the argmax are those of the column's own K logits. Finite, so that
# 0 * it (the one-hot pick of log_prob) is 0 and no gradient is NaN.
PAD_LOGIT = -1e30

def log_factorial1p(x):
    """log Gamma(x + 1) = log(x!) for float32 x >= 0, from ops every export runtime has.

    TensorFlow's ``lgamma`` has no ONNX operator: this is the shifted Stirling series,
    log Gamma(y) = log Gamma(y + 8) - sum_{i<8} log(y + i), the series at y + 8 >= 9 (truncation
    error below 1e-10), within float32 rounding of ``tf.math.lgamma(x + 1)``.
    """
    y = x + 1.0
    w = y + 8.0
    inverse = 1.0 / w
    inverse2 = inverse * inverse
    series = inverse * (1.0 / 12.0 - inverse2 * (1.0 / 360.0 - inverse2 / 1260.0))
    stirling = (w - 0.5) * tf.math.log(w) - w + 0.5 * math.log(2.0 * math.pi) + series
    shift = tf.math.log(y * (y + 1.0) * (y + 2.0) * (y + 3.0)) + tf.math.log(
        (y + 4.0) * (y + 5.0) * (y + 6.0) * (y + 7.0))
    return stirling - shift


class _Layout:
    """Where each type's columns sit in x (static indices) and how many categories each
    categorical column has."""

    def __init__(self, types, num_categories):
        self.types = tuple(types)
        self.num_categories = tuple(int(k) for k in num_categories)
        positions = {kind: [j for j, t in enumerate(self.types) if t == kind] for kind in TYPES}
        self.real, self.binary = positions["real"], positions["binary"]
        self.count, self.categorical = positions["count"], positions["categorical"]
        self.categories = [self.num_categories[j] for j in self.categorical]
        self.max_categories = max(self.categories, default=1)
        # x's values in the order real, binary, count, categorical -> x's own order.
        order = self.real + self.binary + self.count + self.categorical
        self.inverse = [order.index(j) for j in range(len(self.types))]


class TableDistribution(tfd.AutoCompositeTensorDistribution):
    """Independent columns of mixed types: event shape ``event_shape`` (prod of it = the columns).

    ``types`` (one of :data:`TYPES` per column) and ``num_categories`` (K per column, 0 for a
    column that is not categorical) are static. Parameters, each [*B, n] for the n columns of
    its type in x's order: ``loc`` and ``scale`` (real), ``logits`` (binary), ``rate`` (count);
    ``category_logits`` [*B, n, K_max], a column's logits beyond its K being ``PAD_LOGIT``.

    ``mean()``: the Normal's mean, the Bernoulli's probability, the Poisson's rate and, for a
    categorical column, its most probable code (not an expected code).
    """

    def __init__(self, loc, scale, logits, rate, category_logits, types, num_categories,
                 event_shape, validate_args=False, allow_nan_stats=True, name="Table"):
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            self._loc = tf.convert_to_tensor(loc, tf.float32)
            self._scale = tf.convert_to_tensor(scale, tf.float32)
            self._logits = tf.convert_to_tensor(logits, tf.float32)
            self._rate = tf.convert_to_tensor(rate, tf.float32)
            self._category_logits = tf.convert_to_tensor(category_logits, tf.float32)
            self._types = tuple(types)
            self._num_categories = tuple(int(k) for k in num_categories)
            self._table_event_shape = tuple(int(d) for d in event_shape)
            self._layout = _Layout(self._types, self._num_categories)
            super().__init__(dtype=tf.float32,
                             reparameterization_type=tfd.NOT_REPARAMETERIZED,
                             validate_args=validate_args, allow_nan_stats=allow_nan_stats,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        positive = lambda: tfp.bijectors.Softplus(low=MIN_SCALE)  # noqa: E731
        return dict(
            loc=tfp.util.ParameterProperties(event_ndims=1),
            scale=tfp.util.ParameterProperties(event_ndims=1,
                                               default_constraining_bijector_fn=positive),
            logits=tfp.util.ParameterProperties(event_ndims=1),
            rate=tfp.util.ParameterProperties(event_ndims=1,
                                              default_constraining_bijector_fn=positive),
            category_logits=tfp.util.ParameterProperties(event_ndims=2))

    @property
    def loc(self):
        return self._loc

    @property
    def scale(self):
        return self._scale

    @property
    def logits(self):
        return self._logits

    @property
    def rate(self):
        return self._rate

    @property
    def category_logits(self):
        return self._category_logits

    @property
    def types(self):
        return self._types

    @property
    def num_categories(self):
        return self._num_categories

    def _event_shape(self):
        return tf.TensorShape(self._table_event_shape)

    def _event_shape_tensor(self):
        return tf.constant(self._table_event_shape, tf.int32)

    # -- x's columns <-> groups of one type ---------------------------------------------------

    def _flat(self, x):
        """x [..., *E] -> [..., D]."""
        rank = len(self._table_event_shape)
        if rank == 1:
            return x
        return tf.reshape(x, tf.concat([tf.shape(x)[:-rank], [len(self._types)]], axis=0))

    def _join(self, groups, batch=None):
        """Per-type values [*B, n] (real, binary, count, categorical; empty ones left out) ->
        [*B, *E] in x's order (``batch``: B, the distribution's batch shape by default)."""
        batch = self.batch_shape_tensor() if batch is None else batch
        groups = [tf.broadcast_to(g, tf.concat([batch, tf.shape(g)[-1:]], axis=0))
                  for g in groups]
        flat = tf.gather(tf.concat(groups, axis=-1), self._layout.inverse, axis=-1)
        return tf.reshape(flat, tf.concat([batch, self._table_event_shape], axis=0))

    def _category_sizes(self):
        return tf.constant(self._layout.categories, tf.float32)

    # -- the distribution ----------------------------------------------------------------------

    def _log_prob_terms(self, x):
        """Each type's columns' log-probabilities [*B, n] (real, binary, count, categorical;
        empty ones left out), their batch shapes as they broadcast."""
        x, layout = self._flat(tf.cast(x, tf.float32)), self._layout
        terms = []
        if layout.real:
            values = tf.gather(x, layout.real, axis=-1)
            terms.append(tfd.Normal(self._loc, self._scale).log_prob(values))
        if layout.binary:
            values = tf.gather(x, layout.binary, axis=-1)
            # -sigmoid_cross_entropy, as CrossEntropyBernoulli
            terms.append(values * self._logits - tf.nn.softplus(self._logits))
        if layout.count:
            values = tf.gather(x, layout.count, axis=-1)
            # log(x!) of x alone (not of x broadcast against the samples of z); a negative
            # count has probability 0.
            log_factorial = tf.where(values >= 0.0, log_factorial1p(tf.maximum(values, 0.0)),
                                     tf.constant(np.inf, tf.float32))
            terms.append(values * tf.math.log(self._rate) - self._rate - log_factorial)
        if layout.categorical:
            codes = tf.gather(x, layout.categorical, axis=-1)
            log_probs = tf.nn.log_softmax(self._category_logits, axis=-1)
            index = tf.cast(tf.clip_by_value(codes, 0.0, layout.max_categories - 1.0), tf.int32)
            picked = tf.reduce_sum(tf.one_hot(index, layout.max_categories) * log_probs, -1)
            # A value that is not one of the column's codes has probability 0.
            valid = ((codes == tf.floor(codes)) & (codes >= 0.0)
                     & (codes < self._category_sizes()))
            terms.append(tf.where(valid, picked, tf.constant(-np.inf, tf.float32)))
        return terms

    def _log_prob(self, x):
        terms = self._log_prob_terms(x)
        total = tf.reduce_sum(terms[0], axis=-1)
        for term in terms[1:]:  # broadcast: a learned scale has no batch dimensions
            total = total + tf.reduce_sum(term, axis=-1)
        return total

    def column_log_prob(self, x):
        """log p(x_j | z) of each column j of ``x``: [*B, *E], in x's order."""
        terms = self._log_prob_terms(x)
        batch = tf.shape(terms[0])[:-1]
        for term in terms[1:]:
            batch = tf.broadcast_dynamic_shape(batch, tf.shape(term)[:-1])
        terms = [tf.broadcast_to(t, tf.concat([batch, tf.shape(t)[-1:]], axis=0)) for t in terms]
        flat = tf.gather(tf.concat(terms, axis=-1), self._layout.inverse, axis=-1)
        return tf.reshape(flat, tf.concat([batch, self._table_event_shape], axis=0))

    def _mean(self):
        layout = self._layout
        groups = []
        if layout.real:
            groups.append(self._loc)
        if layout.binary:
            groups.append(tf.sigmoid(self._logits))
        if layout.count:
            groups.append(self._rate)
        if layout.categorical:
            groups.append(self.category_modes())
        return self._join(groups)

    def weighted_mean(self, weights):
        """The mean of x under the mixture sum_s w_s p(x | z_s) of the first batch axis, with
        ``weights`` [S, *B'] summing to 1 over S: [*B', *E]. A categorical column takes the
        category of highest mixture probability instead (a mean of codes would mean nothing)."""
        layout, batch = self._layout, self.batch_shape_tensor()
        weights = tf.cast(weights, tf.float32)[..., tf.newaxis]

        def mixed(values):  # [S, *B', n] -> [*B', n]
            values = tf.broadcast_to(values, tf.concat([batch, tf.shape(values)[-1:]], axis=0))
            return tf.reduce_sum(weights * values, axis=0)

        groups = []
        if layout.real:
            groups.append(mixed(self._loc))
        if layout.binary:
            groups.append(mixed(tf.sigmoid(self._logits)))
        if layout.count:
            groups.append(mixed(self._rate))
        if layout.categorical:
            probs = tf.reduce_sum(weights[..., tf.newaxis] * self.category_probs(), axis=0)
            groups.append(tf.cast(tf.argmax(probs, axis=-1, output_type=tf.int32), tf.float32))
        return self._join(groups, batch[1:])

    def category_modes(self):
        """The most probable code of each categorical column, float32 [*B, n]."""
        return tf.cast(tf.argmax(self._category_logits, axis=-1, output_type=tf.int32),
                       tf.float32)

    def category_probs(self):
        """Each categorical column's probabilities [*B, n, K_max] (0 beyond its K)."""
        return tf.nn.softmax(self._category_logits, axis=-1)

    def _sample_n(self, n, seed=None):
        """TFP's samplers (``TableLikelihood.draw`` is the models' draw, by ``tfvae.noise``)."""
        layout = self._layout
        seeds = tfp.random.split_seed(seed, n=4)
        groups = []
        if layout.real:
            groups.append(tfd.Normal(self._loc, self._scale).sample(n, seed=seeds[0]))
        if layout.binary:
            groups.append(tfd.Bernoulli(logits=self._logits, dtype=tf.float32)
                          .sample(n, seed=seeds[1]))
        if layout.count:
            groups.append(tfd.Poisson(rate=self._rate).sample(n, seed=seeds[2]))
        if layout.categorical:
            groups.append(tf.cast(tfd.Categorical(logits=self._category_logits)
                                  .sample(n, seed=seeds[3]), tf.float32))
        batch = tf.concat([[n], self.batch_shape_tensor()], axis=0)
        groups = [tf.broadcast_to(g, tf.concat([batch, tf.shape(g)[-1:]], axis=0))
                  for g in groups]
        flat = tf.gather(tf.concat(groups, axis=-1), layout.inverse, axis=-1)
        return tf.reshape(flat, tf.concat([batch, self._table_event_shape], axis=0))

    def _default_event_space_bijector(self):
        return None
