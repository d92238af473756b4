"""The ``score_rows`` signature of a model trained on a table: the rows a user has, by column.

A served table model takes one input per training column, named as the column (see
:func:`input_names`): a real, count or binary column's values as float32 [B], a categorical
one's as its labels, string [B], which the graph codes as training did; then ``seed`` (and a
conditional model's ``label``), and answers as the ``score`` signature. So a REST request sends
each row as it is, ``{"instances": [{"amount": 48.0, "colour": "green", ..., "seed": 0}]}``.
A value its column's type does not take, or a category the training data did not have, is
refused with INVALID_ARGUMENT naming the column and the first bad row; TF Serving itself names
a column a request lacks. Only the SavedModel has this signature (LiteRT and ONNX have no string
lookups); the other formats take the coded rows that the metadata's categories describe.
"""

import re

import numpy as np
import tensorflow as tf

from tfvae.data.graph_checks import after_checks, graph_assert
from tfvae.data.tables import MAX_COUNT

SIGNATURE = "score_rows"
_RESERVED = ("seed", "label")  # the score signature's other inputs


def table_columns_of(model, metadata=None):
    """The training columns of an export (dicts with "name", "type", "categories"): the run's
    (``metadata["table_columns"]``), else those of the model's table head; None for a model not
    trained on a table."""
    columns = (metadata or {}).get("table_columns")
    return columns or getattr(model.decoder.likelihood, "columns", None)


def input_names(columns):
    """Each column's input name: its name where a tensor name may be one (letters, digits and
    ``_.-``, not first), else with every other character as ``_`` and a leading ``c``; a name
    taken (by ``seed``, ``label`` or another column) gets ``_2``, ``_3``, ..."""
    names, taken = [], set(_RESERVED)
    for column in columns:
        name = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(column["name"]))
        name = name if re.match(r"[A-Za-z0-9.]", name) else "c" + name
        base, n = name, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        names.append(name)
    return names


def column_specs(columns):
    return [tf.TensorSpec([None], tf.string if column["type"] == "categorical" else tf.float32,
                          name=name) for column, name in zip(columns, input_names(columns))]


class RowCoder(tf.Module):
    """The columns' inputs [B] each -> x float32 [B, C], checked and coded as training coded
    them; holds the categories' lookup tables (a module, so that a SavedModel tracks them)."""

    def __init__(self, columns):
        super().__init__(name="row_coder")
        self.columns = [dict(column) for column in columns]
        self.names = input_names(columns)
        self.lookups = [None if column["type"] != "categorical" else tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([str(c) for c in column["categories"]], tf.string),
                tf.range(len(column["categories"]), dtype=tf.int64)), default_value=-1)
            for column in self.columns]

    def __call__(self, cells):
        rows = tf.shape(cells[0])[0]
        checks = [graph_assert(tf.equal(tf.shape(values)[0], rows),
                               f"{name}: expected one value per row, as {self.names[0]} has, "
                               "got values and rows", tf.shape(values)[0], rows)
                  for name, values in zip(self.names[1:], cells[1:])]
        return after_checks(tf.stack([self._column(j, values) for j, values in enumerate(cells)],
                                     axis=1), checks)

    def _column(self, j, values):
        column, name = self.columns[j], self.names[j]
        if column["type"] == "categorical":
            codes = self.lookups[j].lookup(values)
            return _first_bad(codes >= 0, values, tf.cast(codes, tf.float32),
                              f"{name}: expected a category seen in training")
        good = tf.abs(values) <= tf.float32.max  # false for NaN and infinity
        if column["type"] == "binary":
            good = tf.logical_or(tf.equal(values, 0.0), tf.equal(values, 1.0))
            expected = "0 or 1"
        elif column["type"] == "count":
            good = tf.logical_and(good, tf.logical_and(values >= 0, values <= MAX_COUNT))
            good = tf.logical_and(good, tf.equal(values, tf.round(values)))
            expected = f"an integer from 0 to {MAX_COUNT:,}"
        else:
            expected = "a finite number"
        return _first_bad(good, values, values, f"{name}: expected {expected}")


def _first_bad(good, given, values, message):
    """``values`` once every one of ``given`` is ``good``; else the message with the first bad
    row's index (from 0) and value."""
    # One bad entry past the end, so that an empty or all-good batch has a first bad row too.
    first = tf.argmin(tf.cast(tf.concat([good, [False]], 0), tf.int32), output_type=tf.int32)
    padded = tf.concat([given, tf.zeros([1], given.dtype)], 0)
    return after_checks(values, [graph_assert(tf.reduce_all(good), message + ", got in row",
                                              first, padded[first])])


def score_rows_function(score, score_specs, columns):
    """The ``score_rows`` signature's ``tf.function`` over the ``score`` signature's function
    (with inputs ``score_specs``: x, seed, and a conditional model's label), and the
    :class:`RowCoder` a SavedModel must track with it."""
    coder = RowCoder(columns)
    width = len(columns)

    def score_rows(*inputs):  # one per column, then seed (and label)
        return score(coder(inputs[:width]), *inputs[width:])

    specs = [*column_specs(columns), *score_specs[1:]]
    return tf.function(score_rows, input_signature=specs, autograph=False), coder


def warmup_row(columns):
    """One row every column takes (its first category, else 0): input name -> [value]."""
    return {name: np.array([str(column["categories"][0])], object)
            if column["type"] == "categorical" else np.zeros([1], np.float32)
            for column, name in zip(columns, input_names(columns))}
