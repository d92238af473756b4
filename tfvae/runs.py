"""The run directory: the one type that knows the files of a training run and how to read them.

A run directory holds:

- ``config.json``: the model type, model, data and training settings (with the binarization
  used);
- ``metrics.csv``: one row per epoch, train and test ``elbo``/``reconstruction``/``kl``, seconds
  and examples per second;
- ``tensorboard/``: TensorBoard logs (scalars, images and a histogram in ``train/`` and
  ``validation/``; the test set's latent means for the Embedding Projector in ``projector/``
  when asked);
- ``checkpoints/last.keras`` and ``checkpoints/best.keras`` (best test metric), with the
  optimizer state, written atomically at the end of each epoch whose loss is finite;
- ``state.json``: epochs completed, best test ELBO and status (``running``, ``finished``,
  ``diverged``);
- ``train.log``: one line per epoch, as ``tfvae train`` prints it;
- ``model.keras``: the final model, once training finishes.

``.tfvae.lock`` is the writer lock: while ``tfvae train`` writes the run it holds it, and the
kernel releases it when that process ends, however it ends.

Nothing else in the directory is tfvae's: ``--overwrite`` removes these files and no others, and
only from a directory whose ``config.json`` shows that tfvae wrote it.
"""

import csv
import dataclasses
import shutil
from contextlib import contextmanager
from pathlib import Path

from tfvae import options, storage
from tfvae.checks import check_choice
from tfvae.errors import InputError, arg

CSV_COLUMNS = [
    "epoch", "train_elbo", "train_reconstruction", "train_kl",
    "test_elbo", "test_reconstruction", "test_kl", "seconds", "examples_per_second",
    "active_units", "kl_per_dimension", "skipped_steps",
]
# A column of one number per latent dimension, written "0.12;3.40;...".
_VECTOR_COLUMNS = ("kl_per_dimension",)
# config.json's record of the data a run trained on: sha256, example counts, image shape.
DATA_CHECKSUM = "data_checksum"
# config.json's record of a table's feature columns (tfvae.data.tables.Column), for scoring.
TABLE_COLUMNS = "table_columns"
# config.json's record of the MLflow run that tracks the run (tfvae.training.tracking).
MLFLOW_RUN_ID = "mlflow_run_id"
# The keys of every config.json that tfvae train writes.
_CONFIG_KEYS = {"model_type", "model", "data", "train"}


class RunDirectory:
    """A run directory at ``path`` (which need not exist yet)."""

    CONFIG = "config.json"
    STATE = "state.json"
    METRICS = "metrics.csv"
    LOG = "train.log"
    TENSORBOARD = "tensorboard"
    CHECKPOINTS = "checkpoints"
    MODEL = "model.keras"
    # The anomaly threshold calibrated for the run's final model (tfvae.evaluation.scores).
    THRESHOLD = "threshold.json"
    # Everything tfvae writes at the top of a run directory (temporary files start with ".NAME.").
    OWN_FILES = (CONFIG, STATE, METRICS, LOG, TENSORBOARD, CHECKPOINTS, MODEL, THRESHOLD)

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self):
        return f"RunDirectory({str(self.path)!r})"

    # -- paths -------------------------------------------------------------------------------

    @property
    def config_path(self):
        return self.path / self.CONFIG

    @property
    def state_path(self):
        return self.path / self.STATE

    @property
    def metrics_path(self):
        return self.path / self.METRICS

    @property
    def tensorboard_dir(self):
        return self.path / self.TENSORBOARD

    @property
    def projector_dir(self):
        return self.tensorboard_dir / "projector"

    @property
    def checkpoint_dir(self):
        return self.path / self.CHECKPOINTS

    def checkpoint_path(self, checkpoint="model"):
        """The file of ``checkpoint``: "model" (final), "best" or "last"; or a count (of steps or
        samples, as the run counts) for ``checkpoints/ckpt-<count>.keras``, the one taken there."""
        if isinstance(checkpoint, int) and not isinstance(checkpoint, bool):
            return self.checkpoint_dir / f"ckpt-{checkpoint:012d}.keras"
        check_choice("checkpoint", checkpoint, options.CHECKPOINTS)
        if checkpoint == "model":
            return self.path / self.MODEL
        return self.checkpoint_dir / f"{checkpoint}.keras"

    # -- what the run holds ------------------------------------------------------------------

    def is_run(self):
        """Whether ``path`` holds a run that tfvae wrote (its config.json, with tfvae's keys; what
        they hold is checked where it is read)."""
        from tfvae.readers import read_json

        try:
            return _CONFIG_KEYS <= set(read_json(self.config_path, "RUN_DIR", "a config.json"))
        except (OSError, ValueError):  # InputError included
            return False

    def read_config(self):
        """config.json, checked to hold tfvae's keys of the right types (InputError naming the
        file and what is wrong if not)."""
        from tfvae.readers import read_json

        expected = "a run's config.json as tfvae train writes it"
        config = read_json(self.config_path, "RUN_DIR", expected)
        problem = _config_problem(config)
        if problem:
            raise InputError("RUN_DIR", expected, f"{str(self.config_path)!r}, {problem}")
        return config

    def write_config(self, config):
        storage.write_json(self.config_path, config)

    def read_state(self):
        """state.json as a dict ({} before the first epoch ends)."""
        from tfvae.readers import read_json

        if not self.state_path.exists():
            return {}
        expected = "a run's state.json as tfvae train writes it"
        state = read_json(self.state_path, "RUN_DIR", expected)
        for key, kinds in _STATE_TYPES.items():
            if key in state and not _of_type(state[key], kinds):
                raise InputError("RUN_DIR", expected, f"{str(self.state_path)!r}, whose "
                                 f"{key!r} is {state[key]!r}")
        return state

    def read_json_state(self, argument, expected):
        """state.json as a dict ({} when there is none), checked only to be a JSON object: for a
        run that is not ``tfvae train``'s (the paper's), whose fields are its own; an error names
        ``argument`` and what was ``expected``."""
        from tfvae.readers import read_json

        if not self.state_path.exists():
            return {}
        return read_json(self.state_path, argument, expected)

    def write_state(self, state):
        storage.write_json(self.state_path, state)

    def read_metrics(self):
        """metrics.csv as a list of dicts of floats (None for empty cells)."""
        from tfvae.readers import read_csv

        if not self.metrics_path.exists():
            return []
        expected = "a run's metrics.csv as tfvae train writes it (numbers, one row per epoch)"
        rows = []
        for number, row in enumerate(read_csv(self.metrics_path, "RUN_DIR", expected), start=2):
            try:
                rows.append({k: _cell(k, v) for k, v in row.items()})
            except ValueError:
                rows = None
            if rows is None or not _of_type(rows[-1].get("epoch"), (float,)):
                raise InputError("RUN_DIR", expected, f"{str(self.metrics_path)!r}, whose line "
                                 f"{number} is not numbers with an epoch")
        return rows

    def _write_metrics(self, rows):
        def write(tmp):
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
                writer.writeheader()
                writer.writerows({**r, "epoch": int(r["epoch"]),
                                  **{k: _vector_text(r.get(k)) for k in _VECTOR_COLUMNS}}
                                 for r in rows)

        storage.write_atomic(self.metrics_path, write)

    def append_metrics(self, row):
        """Add an epoch's row; the file is rewritten whole, so a full disk never leaves half a
        row."""
        self._write_metrics([*self.read_metrics(), row])

    def truncate_metrics(self, epochs):
        """Keep the rows of the first ``epochs`` epochs (a killed run may have logged one more)."""
        rows = [r for r in self.read_metrics() if r["epoch"] <= epochs]
        self._write_metrics(rows)
        return rows

    def append_log(self, line):
        """Add one line to train.log."""
        with open(self.path / self.LOG, "a") as f:
            f.write(line + "\n")

    def remove_stale(self):
        """Remove the temporaries a killed run left (a checkpoint or state half written), and a
        threshold calibrated for the model that training goes on to change."""
        storage.remove_stale(self.path)
        storage.remove_stale(self.checkpoint_dir)
        self.threshold_path.unlink(missing_ok=True)

    # -- the anomaly threshold ----------------------------------------------------------------

    @property
    def threshold_path(self):
        return self.path / self.THRESHOLD

    def read_threshold(self):
        """The run's :class:`tfvae.evaluation.scores.Threshold`, or None before one is
        calibrated."""
        from tfvae.evaluation.scores import Threshold
        from tfvae.readers import read_json

        if not self.threshold_path.exists():
            return None
        expected = "a threshold.json written by tfvae threshold"
        record = read_json(self.threshold_path, "run_dir", expected)
        try:
            return Threshold(**record)
        except TypeError:
            raise InputError("run_dir", expected, f"{str(self.threshold_path)!r} with keys "
                             f"{sorted(record)}") from None

    def write_threshold(self, threshold):
        storage.write_json(self.threshold_path, dataclasses.asdict(threshold))

    # -- models and data ---------------------------------------------------------------------

    def require_run(self):
        if self.config_path.exists():
            self.read_config()  # a config.json that is there but broken: say what is wrong
        if not self.is_run():
            raise InputError("RUN_DIR", "a run directory made by `tfvae train`",
                             repr(str(self.path)))

    def model_file(self, checkpoint="model"):
        """The file of ``checkpoint``; "model" falls back to the last checkpoint for a run that
        has not finished."""
        self.require_run()
        path = self.checkpoint_path(checkpoint)
        if checkpoint == "model" and not path.exists():
            path = self.checkpoint_path("last")
        if not path.exists():
            raise InputError("RUN_DIR", f"a run with {path.relative_to(self.path)}",
                             f"{str(self.path)!r} without it")
        return path

    def load_model(self, checkpoint="model"):
        """The run's model at ``checkpoint``."""
        from tfvae.models import load_model

        return load_model(self.model_file(checkpoint))

    def model_type(self):
        self.require_run()
        return self.read_config().get("model_type")

    def load_dataset(self, name=None, **overrides):
        """The dataset the run was trained on, as its config records it, or ``name`` instead
        (``--dataset``) with the run's other data settings."""
        from tfvae.data import load_dataset
        from tfvae.data.validation import load_with_run_settings

        config = self.read_config()
        data = {**config["data"], "seed": config["train"]["seed"], **overrides}
        if name is not None:
            return load_with_run_settings(
                name, {k: v for k, v in data.items() if k != "data_path"},
                config["model"].get("image_shape"))
        check_dataset_is_there(data)
        return load_dataset(**data)

    # -- making a run ------------------------------------------------------------------------

    @contextmanager
    def writer(self, *, resume, overwrite):
        """Hold the run's writer lock (``storage.exclusive_writer``) while the block runs, and
        check under it what ``path`` holds against ``resume``/``overwrite``: a second ``train``,
        ``--resume`` or ``--overwrite`` of a run being written is refused, naming the process
        that writes it. A refused command leaves the directory as it was."""
        if resume and overwrite:
            raise InputError(f"{arg('resume')}/{arg('overwrite')}", "at most one of them", "both")
        if self.path.exists() and not self.path.is_dir():
            raise InputError("run_dir", "a directory", f"the file {str(self.path)!r}")
        storage.check_writable_dir(self.path, "run_dir")
        with storage.exclusive_writer(self.path, argument="run_dir", what="run directory"):
            self._check_new(resume=resume, overwrite=overwrite)
            yield self

    def _check_new(self, *, resume, overwrite):
        if resume:
            if self.config_path.exists():
                self.read_config()  # a damaged config.json is named as such
            if not self.is_run() or not self.checkpoint_path("last").is_file():
                raise InputError("resume", "a run directory with checkpoints/last.keras",
                                 repr(str(self.path)))
            return
        if not self.path.exists() or not any(e.name != storage.LOCK_FILE
                                             for e in self.path.iterdir()):
            return
        if not overwrite:
            # --resume and --overwrite are offered only where they would be taken.
            way_out = (f"{arg('resume', True)} / {arg('overwrite', True)}" if self.is_run()
                       else "another directory: it is no tfvae run")
            raise InputError("run_dir", f"a new or empty run directory (or {way_out})",
                             f"{str(self.path)!r}, which is not empty")
        if not self.is_run():
            raise InputError("overwrite", "a run directory written by tfvae train (it has "
                             "tfvae's config.json); nothing was removed",
                             f"{str(self.path)!r}, which is not one")

    def create(self, config):
        """Start the run: remove a previous run's files (only tfvae's own), write config.json."""
        if self.path.is_dir():
            for entry in self.path.iterdir():
                own = entry.name in self.OWN_FILES or any(
                    entry.name.startswith(f".{name}.") for name in self.OWN_FILES)
                if not own:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_config(config)


def load_run(run_dir, checkpoint="model"):
    """The model of a run and its config: ``checkpoint`` is "model" (final), "best" or "last"."""
    run = RunDirectory(run_dir)
    return run.load_model(checkpoint), run.read_config()


# The types each key of state.json and config.json must have where it is present.
_STATE_TYPES = {"epochs_completed": (int,), "best_test_elbo": (float, int, type(None)),
                "status": (str,)}


def _of_type(value, kinds):
    """Whether ``value`` is of one of ``kinds`` (bool is not a number here)."""
    return isinstance(value, kinds) and not isinstance(value, bool)


def _config_problem(config):
    """What is wrong with a config.json's structure, or None."""
    missing = sorted(_CONFIG_KEYS - set(config))
    if missing:
        return f"without {', '.join(missing)}"
    if not isinstance(config["model_type"], str):
        return f"whose model_type is {config['model_type']!r}"
    for key in ("model", "data", "train"):
        if not isinstance(config[key], dict):
            return f"whose {key!r} is {config[key]!r}, not an object"
    if not isinstance(config["data"].get("name"), str):
        return "without a dataset name in 'data'"
    for key in ("seed", "epochs"):
        if key in config["train"] and not _of_type(config["train"][key], (int,)):
            return f"whose train {key!r} is {config['train'][key]!r}"
    return None


def _cell(column, text):
    if text in ("", None):
        return None
    if column in _VECTOR_COLUMNS:
        return [float(value) for value in text.split(";")]
    return float(text)


def _vector_text(values):
    return None if values is None else ";".join(f"{float(v):.4f}" for v in values)


def check_dataset_is_there(data_config):
    """Refuse a run's dataset file that is no longer where the run recorded it, saying how to give
    its new place."""
    from tfvae.data.sources import looks_like_path

    name = data_config["name"]
    if looks_like_path(name) and not Path(name).exists():
        raise InputError("name", f"the run's dataset, which was {name!r} (give it with "
                         f"{arg('name', 'PATH')} where it is now)", "no such file")
