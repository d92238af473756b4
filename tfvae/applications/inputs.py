"""Inputs and outputs of the application commands: a run of the right model type, its dataset,
and image arrays in .npz files.

Input .npz files hold ``x``, images [N, H, W], [N, H, W, C] or [N, H*W] (grey levels 0..255 or
floats in [0, 1]), and optionally ``y``, one integer label per image. Outputs are checked and
written by ``tfvae.storage``.
"""

from pathlib import Path

import numpy as np

from tfvae import data as datasets
from tfvae.data.files import read_npz
from tfvae.data.validation import with_mask
from tfvae.errors import InputError, arg
from tfvae.runs import RunDirectory

# Model types whose runs have encode(x) -> a distribution over z, and decode(z).
CODE_MODELS = ("vae", "autoencoder", "wake_sleep")


def load_code_run(run_dir, model_types=CODE_MODELS, purpose="an encoder and a decoder",
                  checkpoint="model", conditional=False):
    """(model, config) of a run whose model type is one of ``model_types`` (and unconditional
    unless ``conditional``: the command has labels to give), checked before the model is
    loaded."""
    run = RunDirectory(run_dir)
    model_type = run.model_type()
    if model_type not in model_types:
        wanted = " or ".join(map(repr, model_types))
        raise InputError("RUN_DIR", f"a run of model type {wanted} ({purpose})",
                         f"{str(run_dir)!r}, a run of model type {model_type!r}")
    config = run.read_config()
    if config["model"].get("num_classes") and not conditional:
        raise InputError("RUN_DIR", f"a run of an unconditional model ({purpose}, without "
                         "labels)", f"{str(run_dir)!r}, a conditional run")
    return run.load_model(checkpoint), config


def require_pictures(model, why):
    """Refuse a model of vectors where pictures are what a command makes (``why``)."""
    if len(model.image_shape) != 3:
        raise InputError("run_dir", f"a run of a model of images ({why})",
                         f"a run of vectors of {model.image_shape[0]} values")


def run_dataset(model, run_dir, name=None, train_examples=None, test_examples=None):
    """The run's dataset (or ``name``), full splits unless limited, in grey levels.

    No binarization: under MNIST's dynamic binarization the train split keeps grey levels but the
    test split is binarized once, and features must treat both splits alike. Held in memory:
    what these commands compute takes every example as an array.
    """
    dataset = RunDirectory(run_dir).load_dataset(name, binarize="none",
                                                 train_examples=train_examples,
                                                 test_examples=test_examples, storage="memory")
    if tuple(dataset.image_shape) != tuple(model.image_shape):
        raise InputError("name", f"images of shape {tuple(model.image_shape)}, as the run's "
                         "model takes", f"{dataset.name} with shape {dataset.image_shape}")
    return dataset


def read_images(path, model, argument="input", labels=False):
    """(x [N, *E] float32, y [N] int64 or None) from an .npz with ``x`` (and ``y``)."""
    path = Path(path)
    examples = "rows" if len(model.image_shape) == 1 else "images"
    expected = f"an .npz file with {examples} x (and labels y)"
    if not path.is_file():
        raise InputError(argument, expected, f"{str(path)!r}, which is not a file")
    arrays = read_npz(path, argument, expected)
    if "x" not in arrays:
        raise InputError(argument, expected, f"{str(path)!r} with keys {sorted(arrays)}")
    x = arrays["x"]
    if "mask" in arrays:  # 0 where a value is missing
        x = with_mask(x, arrays["mask"], f"{arg(argument)} (mask)")
    x = datasets.model_images(model, x, f"{arg(argument)} (x)")
    y = arrays.get("y")
    if y is not None:
        y = np.asarray(y)
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise InputError(f"{arg(argument)} (y)", f"{len(x)} integer labels, one per example",
                             f"shape {y.shape} of dtype {y.dtype}")
        y = y.astype(np.int64)
    elif labels:
        raise InputError(argument, "an .npz with labels y", f"{str(path)!r} without y")
    return x, y


def read_run_examples(path, run, model, argument="input"):
    """(x, labels or None, ids or None) of the file ``path`` for ``model``, a run's: a table
    (.csv, .parquet) read by the run's training columns (with its id column's ids), or an .npz
    of x (and y) as :func:`read_images` reads it. A model that takes missing values
    (``allow_missing``) takes empty cells and NaN."""
    from tfvae.data.tables import TABLE_SUFFIXES, Column, read_table
    from tfvae.data.validation import missing_allowed
    from tfvae.runs import TABLE_COLUMNS

    if Path(path).suffix.lower() not in TABLE_SUFFIXES:
        x, y = read_images(path, model, argument, labels=model.conditional)
        return x, y, None
    columns = run.read_config().get(TABLE_COLUMNS)
    if columns is None:
        raise InputError(argument, "an .npz of examples (the run was not trained on a table)",
                         repr(str(path)))
    with missing_allowed(getattr(model, "allow_missing", False)):
        table = read_table(path, argument=argument, columns=[
            Column(c["name"], c["type"], c["categories"] and tuple(c["categories"]))
            for c in columns])
    return table.values, None, table.ids


def write_rows(path, rows, columns=None, *, overwrite=False, leading=None):
    """Write examples ``rows`` [N, D] to ``path``: an .npz (``x``), or a .csv with a header of
    the table's ``columns`` (``tfvae.data.tables.Column`` records; ``x0``, ``x1``... without),
    counts and 0/1 values as integers and categories as their labels, after the ``leading``
    columns (name -> N values, such as ids)."""
    import csv
    import io

    from tfvae.storage import write_npz, write_text

    rows = np.asarray(rows).reshape(len(rows), -1)
    if Path(path).suffix.lower() == ".npz":
        return write_npz(path, overwrite=overwrite, x=rows)
    columns = columns or [{"name": f"x{j}", "type": "real", "categories": None}
                          for j in range(rows.shape[1])]
    text = io.StringIO()
    table = csv.writer(text, lineterminator="\n")
    leading = leading or {}
    table.writerow([*leading, *(column["name"] for column in columns)])
    for i, row in enumerate(rows):
        table.writerow([*(values[i] for values in leading.values()),
                        *(_cell(value, column) for value, column in zip(row, columns))])
    return write_text(path, text.getvalue(), overwrite=overwrite)


def _cell(value, column):
    """One value as its column's type shows it: a category's label, an integer, a float."""
    if column["type"] == "categorical":
        categories = column["categories"]
        return categories[min(max(int(round(value)), 0), len(categories) - 1)]
    if column["type"] in ("binary", "count"):
        return int(round(value))
    return str(np.float32(value))  # float32's shortest digits: 51.26, not 51.2599983215332
