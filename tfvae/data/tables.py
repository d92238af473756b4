"""Reading a CSV, TSV or Parquet file into a numeric table the models can train on, with pyarrow.

Every column is a feature unless it is excluded, the label, or the one named exactly "id". A
feature is "binary" (0/1, true/false), "count" (integers >= 0), "real" (other numbers) or
"categorical" (text, coded into its sorted categories): inferred, or given by ``column_types``.
``values`` hold the raw numbers (the model side standardizes). Bad input raises one
:class:`tfvae.errors.InputError` naming the argument, the file, the row and the column. Rows are
the file's: in a CSV the header is row 1, the first data row 2; in Parquet (no header row) 1.
"""

import collections
import contextlib
import dataclasses
import pathlib
from collections.abc import Mapping

import numpy as np

try:  # only tables need pyarrow, an optional dependency (tfvae[tables])
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as csv
    import pyarrow.parquet as pq
except ImportError:
    pa = None

from tfvae.data.files import open_regular
from tfvae.data.validation import allows_missing
from tfvae.errors import InputError, arg

TYPES = ("binary", "count", "real", "categorical")
FILE_EXPECTED = "a .csv, .tsv, .parquet or .pq file with a header row of column names"
CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
PARQUET_SUFFIXES = (".parquet", ".pq")
TABLE_SUFFIXES = (*CSV_SUFFIXES, *PARQUET_SUFFIXES)
def _missing_expected():
    return (f"a value in every cell (or {arg('allow_missing', True)}: empty cells are missing "
            "values)")


ID_COLUMN = "id"
# Counts are stored as float32, which holds every integer up to 2^24 exactly and no more.
MAX_COUNT = 2 ** 24
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclasses.dataclass(frozen=True)
class Column:
    """A feature column: its ``name``, ``type`` (one of :data:`TYPES`) and, when categorical,
    its ``categories``, sorted: code ``k`` in ``Table.values`` stands for ``categories[k]``."""

    name: str
    type: str
    categories: tuple | None = None


@dataclasses.dataclass(eq=False)  # arrays do not compare by ==
class Table:
    """A table read by :func:`read_table`: ``values`` float32 [N, D], one ``columns`` entry per
    feature; ``labels`` int64 [N] or None, coded into ``label_categories`` when the labels are
    not integers >= 0; ``ids`` the "id" column as strings, or None. ``path`` and ``first_row``
    (the file's row number of ``values[0]``) let later messages name a row."""

    values: np.ndarray
    columns: tuple
    labels: np.ndarray | None = None
    label_categories: tuple | None = None
    ids: np.ndarray | None = None
    path: str = ""
    first_row: int = 2


# For messages: the file, the row number of its first data row, the argument that named it.
_Source = collections.namedtuple("_Source", "path first_row argument")


def _refuse(source, expected, index, name, what):
    """The InputError about the cell of data row ``index`` (0-based) in column ``name``."""
    return InputError(source.argument, expected, f"{source.path!r} row "
                      f"{source.first_row + index}, column {name!r}: {what}")


def read_table(path, *, exclude=(), label=None, column_types=None, columns=None,
               argument="name"):
    """The :class:`Table` of the file ``path`` (``argument`` is the argument that named it).

    ``column_types`` maps column names to one of :data:`TYPES` where the inferred type is not
    the one meant (or is "NAME=TYPE" strings, as a command line gives them). ``columns``, the
    training table's, reads a new file for scoring: those columns, of those types, coded as in
    training (:func:`encode_rows`); its other columns are left out."""
    if pa is None:
        raise InputError(argument, "pyarrow installed to read tables (tfvae[tables])", "none")
    path, exclude = pathlib.Path(path), (exclude,) if isinstance(exclude, str) else exclude
    given_types = parse_column_types(column_types)
    # Scoring reads each training column as its type, whatever column_types says: codes must
    # match.
    types = dict(given_types) | {column.name: column.type for column in columns or ()}
    table, source = _read_arrow(path, types, argument)
    names = table.column_names
    header = (f"the header (row 1) of {source.path!r}" if source.first_row == 2
              else repr(source.path))
    # Scoring: the training columns the file has (encode_rows names any it lacks).
    features = ([c.name for c in columns if c.name in names] if columns is not None else
                [n for n in names if n not in exclude and n != label and n != ID_COLUMN])
    for given, unknown, known in (("exclude", exclude, names),
                                  ("column_types", given_types, features),
                                  ("label", [] if label is None else [label], names)):
        for name in unknown:
            if name not in known:
                raise InputError(given, f"names of {'feature ' * (known is features)}columns "
                                 f"in {header}: {_listed(known)}", repr(name))
    for name, type_ in given_types.items():
        if type_ not in TYPES:
            raise InputError("column_types", f"one of {', '.join(TYPES)} for column {name!r} of "
                             f"{header}", repr(type_))
    if table.num_rows == 0:
        raise InputError(argument, "a table with at least one row of data", repr(source.path))
    if not features:
        raise InputError(argument, "at least one feature column", f"{source.path!r} has none")
    values, kept = np.empty((table.num_rows, len(features)), np.float32), []
    for j, name in enumerate(features):
        values[:, j], column = _feature(table[name], name, types.get(name), source)
        kept.append(column)
    labels, categories = (None, None) if label is None else _labels(table[label], label, source)
    ids = None
    if ID_COLUMN in names and ID_COLUMN not in exclude and label != ID_COLUMN:
        ids = np.asarray(_text(_present(table[ID_COLUMN], ID_COLUMN, source)), dtype=str)
    result = Table(values, tuple(kept), labels, categories, ids, source.path, source.first_row)
    return result if columns is None else encode_rows(result, columns, argument)


def parse_column_types(column_types):
    """``{name: type}`` of a mapping, or of "NAME=TYPE" strings (types checked by
    :func:`read_table`, which knows the columns)."""
    if column_types is None:
        return {}
    if isinstance(column_types, Mapping):
        return dict(column_types)
    pairs = [column_types] if isinstance(column_types, str) else column_types
    expected = f"a mapping of column names to types, or NAME=TYPE pairs (TYPE: {', '.join(TYPES)})"
    try:
        parsed = [str(pair).rpartition("=") for pair in pairs]
    except TypeError:
        raise InputError("column_types", expected, repr(column_types)) from None
    for pair, (name, equals, _) in zip(pairs, parsed):
        if not equals or not name:
            raise InputError("column_types", expected, repr(pair))
    return {name: type_ for name, _, type_ in parsed}


def column_names(path, argument="name"):
    """The column names of the table file ``path``, in its order, from its header alone (a
    Parquet file's schema, a CSV file's first block)."""
    if pa is None:
        raise InputError(argument, "pyarrow installed to read tables (tfvae[tables])", "none")
    path = pathlib.Path(path)
    with _opened(path, argument) as f:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return pq.read_schema(f).names
        # Bad rows are left to read_table, which names them.
        return csv.open_csv(f, csv.ReadOptions(use_threads=False),
                            _csv_options(path, lambda row: "skip")).schema.names


def encode_rows(rows, columns, argument="name"):
    """``rows`` (a :class:`Table` of a new file) in the training ``columns``' order and codes.
    A category not seen in training, a value the training column's type does not take, or a
    training column the file lacks is refused, naming the file, row and column."""
    source = _Source(rows.path, rows.first_row, argument)
    by_name = {column.name: (k, column) for k, column in enumerate(rows.columns)}
    values = np.empty((len(rows.values), len(columns)), np.float32)
    for j, trained in enumerate(columns):
        if trained.name not in by_name:
            raise InputError(argument, f"the column {trained.name!r} the model was trained on",
                             f"{rows.path!r} without it ({_listed(by_name)})")
        k, column = by_name[trained.name]
        if (column.type == "categorical") != (trained.type == "categorical"):
            raise InputError(argument, f"a {trained.type} column {trained.name!r}, as in "
                             "training", f"{rows.path!r} where it is {column.type}")
        if trained.type != "categorical":
            values[:, j] = _check_values(rows.values[:, k].astype(np.float64), trained.type,
                                         trained.name, source)
            continue
        # This file's codes -> its categories -> the training codes (-1: unseen in training).
        index = {category: code for code, category in enumerate(trained.categories)}
        recode = np.array([index.get(c, -1) for c in column.categories], np.int64)
        empty = np.isnan(rows.values[:, k])  # a missing value stays missing
        own_codes = np.where(empty, 0, rows.values[:, k]).astype(np.int64)
        codes = recode[own_codes] if len(recode) else np.full(len(own_codes), -1)
        codes = np.where(empty, 0, codes)
        values[:, j] = np.where(empty, np.nan, codes)
        if (codes < 0).any():
            i = int(np.argmax(codes < 0))
            raise _refuse(source, f"a category of {trained.name!r} seen in training "
                          f"({_listed(trained.categories)})", i, trained.name,
                          repr(column.categories[own_codes[i]]))
    return dataclasses.replace(rows, values=values, columns=tuple(columns))


@contextlib.contextmanager
def _opened(path, argument):
    """The table file ``path`` opened for reading; what pyarrow or the system raise while it is
    read becomes one InputError naming the file."""
    where, suffix = str(path), path.suffix.lower()
    if suffix not in CSV_SUFFIXES and suffix not in PARQUET_SUFFIXES:
        raise InputError(argument, FILE_EXPECTED, f"{where!r} (named {suffix or 'so'})")
    try:
        with open_regular(path) as f:  # never a FIFO or a device, which would block
            yield f
    except (OSError, pa.ArrowException) as exc:
        reason = "an empty file" if "Empty CSV" in str(exc) else str(exc).splitlines()[0]
        raise InputError(argument, FILE_EXPECTED, f"{where!r} ({reason})") from None


def _csv_options(path, invalid_row_handler=None):
    # Empty lines are kept, so that row numbers are the file's (trailing ones go below).
    return csv.ParseOptions(delimiter=CSV_SUFFIXES.get(path.suffix.lower(), ","),
                            ignore_empty_lines=False, invalid_row_handler=invalid_row_handler)


def _read_arrow(path, types, argument):
    """The file as a pyarrow table, and its :class:`_Source`."""
    where, suffix = str(path), path.suffix.lower()
    # Read as text, categories and ids keep their digits: "007" is not 7.
    as_text = {name: pa.string() for name, type_ in types.items()
               if type_ == "categorical"} | {ID_COLUMN: pa.string()}
    ragged = []  # the first ragged row, numbered serially, skipped: the header names its column
    parse = _csv_options(path, lambda row: "skip" if ragged else ragged.append(row) or "skip")
    convert = csv.ConvertOptions(column_types=as_text, strings_can_be_null=True)
    with _opened(path, argument) as f:
        table = (pq.read_table(f) if suffix in PARQUET_SUFFIXES else csv.read_csv(
            f, csv.ReadOptions(use_threads=False), parse, convert))
    names = table.column_names
    if ragged:
        row = ragged[0]
        lacking = (f"no cell for column {names[row.actual_columns]!r}"
                   if row.actual_columns < len(names) else f"cells past column {names[-1]!r}")
        raise InputError(argument, f"rows of {row.expected_columns} cells, as the header has",
                         f"{where!r} row {row.number}: {row.actual_columns} cells, {lacking} "
                         f"({row.text[:80]!r})")
    if len(set(names)) < len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise InputError(argument, "a header of distinct column names",
                         f"the header (row 1) of {where!r} names column {twice!r} twice")
    if suffix in PARQUET_SUFFIXES:
        return table, _Source(where, 1, argument)
    empty = np.logical_and.reduce([c.is_null().to_numpy(zero_copy_only=False)
                                   for c in table.columns])
    kept = len(np.trim_zeros(~empty, "b"))  # blank lines at the end are no rows
    return table.slice(0, kept), _Source(where, 2, argument)


def _feature(column, name, type_, source):
    """A feature column as float64 values (NaN for an empty cell, where missing values are
    allowed) and its :class:`Column`, of ``type_`` or inferred."""
    column = _present(column, name, source, missing=allows_missing())
    kind = column.type
    # Text that is not UTF-8 pyarrow reads as bytes, and cannot cast to text.
    if pa.types.is_binary(kind) or not (_is_text(kind) or _is_number(kind)
                                        or type_ == "categorical"):
        raise InputError(source.argument, "columns of numbers, true/false or UTF-8 text "
                         "(exclude the others, or type them categorical by types)",
                         f"{source.path!r} column {name!r} of type {kind}")
    if type_ is None and pa.types.is_integer(kind):
        low, high = pc.min(column).as_py(), pc.max(column).as_py()
        type_ = ("binary" if low >= 0 and high <= 1 else
                 "count" if low >= 0 and high <= MAX_COUNT else "real")
    elif type_ is None:
        type_ = ("categorical" if _is_text(kind) else
                 "binary" if pa.types.is_boolean(kind) else "real")
    if type_ == "categorical":
        codes, categories = _encode(column)
        return codes, Column(name, type_, categories)
    if _is_text(kind):
        try:
            column = pc.cast(column, pa.float64())
        except pa.ArrowInvalid:
            i = _first_unparsable(column)
            raise _refuse(source, f"a number in every cell of a {type_} column", i, name,
                          repr(column[i].as_py())) from None
    values = pc.cast(column, pa.float64()).to_numpy()  # an empty cell as NaN
    return _check_values(values, type_, name, source), Column(name, type_)


def _check_values(values, type_, name, source):
    """``values`` (float64) if all are what ``type_`` takes, else the first that is not."""
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(values) & (np.abs(values) <= _FLOAT32_MAX)
        good = {"binary": (values == 0) | (values == 1),
                "count": finite & (values >= 0) & (values == np.round(values))
                & (values <= MAX_COUNT),
                "real": finite}[type_]
    if allows_missing():
        good |= np.isnan(values)
    if not good.all():
        i = int(np.argmin(good))
        expected = {"binary": "0 or 1 (or true/false)",
                    "count": f"an integer from 0 to {MAX_COUNT:,} (exact in float32)",
                    "real": "a finite number float32 holds"}[type_]
        raise _refuse(source, f"{expected} in every cell of a {type_} column", i, name,
                      repr(float(values[i])))
    return values


def _labels(column, name, source):
    """Labels as int64, and the categories they code (None when they are integers >= 0)."""
    column = _present(column, name, source)
    if pa.types.is_integer(column.type) or pa.types.is_boolean(column.type):
        labels = pc.cast(column, pa.int64()).to_numpy()
        if labels.min() >= 0:
            return labels, None
    codes, categories = _encode(column)
    return codes.astype(np.int64), categories


def _encode(column):
    """Codes of ``column``'s values into its distinct values as text, sorted (whatever order
    the rows are in, the same values get the same codes); an empty cell's code is NaN."""
    text = _text(column)
    categories = tuple(sorted(pc.unique(text).drop_null().to_pylist()))
    codes = pc.index_in(text, value_set=pa.array(categories, pa.string()))
    return codes.to_numpy(zero_copy_only=False).astype(np.float64), categories


def _present(column, name, source, missing=False):
    """``column`` (dictionary-encoded columns decoded) if no cell of it is missing, or
    ``missing`` values are allowed."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if column.null_count and not missing:
        i = int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
        raise _refuse(source, _missing_expected(), i, name, "an empty cell")
    return column


def _first_unparsable(column):
    """The index of the first text that is no number, by halving the range that fails to cast."""
    low, high = 0, len(column)
    while high - low > 1:
        middle = (low + high) // 2
        try:
            pc.cast(column.slice(low, middle - low), pa.float64())
            low = middle
        except pa.ArrowInvalid:
            high = middle
    return low


def _is_text(kind):
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _is_number(kind):  # true/false included, as 1/0
    return any(is_kind(kind) for is_kind in (pa.types.is_boolean, pa.types.is_integer,
                                             pa.types.is_floating, pa.types.is_decimal))


def _text(column):  # numbers as pyarrow writes them: 7, 1.5, true
    return column if _is_text(column.type) else column.cast(pa.string())


def _listed(names, shown=10):
    names = list(names)
    return ", ".join(map(repr, names[:shown])) + (", ..." if len(names) > shown else "")
