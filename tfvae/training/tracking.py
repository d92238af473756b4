"""MLflow tracking of a run (``train(mlflow=URI)``, ``tfvae train --mlflow URI``).

One MLflow run per run directory: config.json records its id (``mlflow_run_id``), so a resume
continues it. The MLflow run gets

- as parameters, the settings of config.json (:func:`flat_settings`) as the run
  started with them; a resume that changes one (the total ``epochs``) sets a tag of the same
  name to the new value, since MLflow keeps a parameter's first value;
- as metrics, each row of metrics.csv, with the epoch as the step: the numbers the file holds,
  read back from it, so the two never differ;
- as artifacts, config.json, metrics.csv, train.log and state.json; once the run finishes,
  model.keras and the last epoch's pictures (``figures/*.png``, as TensorBoard shows them).

Its status is FINISHED, KILLED (a stop signal) or FAILED (a diverged loss, any error). Only the
chief of a multi-worker run writes. MLflow (``tfvae[tracking]``) is imported only here, and only
when a run is tracked.
"""

import math
import os
import sys
import tempfile
import time
from pathlib import Path

import keras

from tfvae import images
from tfvae.errors import InputError, arg, render
from tfvae.runs import RunDirectory

# MLflow's limits on one log_batch request.
_PARAMS_PER_REQUEST, _METRICS_PER_REQUEST = 100, 1000
# The metric every metrics.csv row has: its steps are the epochs the MLflow run holds.
_EVERY_ROW = "seconds"
_INSTALL = "MLflow installed (pip install 'tfvae[tracking]')"


def _mlflow():
    try:
        import mlflow  # optional: only a tracked run needs it
    except ImportError as exc:
        raise InputError("mlflow", _INSTALL, f"ImportError: {exc}") from exc
    return mlflow


def run_tracking_uri(recorded, given):
    """The MLflow tracking URI a run logs to: ``given``, or a resumed run's ``recorded`` one
    (None: not tracked). A resume may start tracking a run, not move it to another server."""
    if given is not None and recorded is not None and given != recorded:
        raise InputError("mlflow", f"{recorded!r} as the run was started with (its MLflow run "
                         "is there)", repr(given))
    uri = recorded if given is None else given
    if uri is not None:
        if not isinstance(uri, str) or not uri.strip():
            raise InputError("mlflow", "an MLflow tracking URI (http://HOST:PORT, "
                             "file:///DIR, ...)", repr(uri))
        _mlflow()
    return uri


class MlflowTracking(keras.callbacks.Callback):
    """Logs the run in ``run`` (a :class:`tfvae.runs.RunDirectory`) to the MLflow run ``run_id``
    at ``uri``, or to a new one (in the experiment ``$MLFLOW_EXPERIMENT_NAME``, else
    "Default"), named ``name``. Connecting is done here, before the run directory is written:
    a server that cannot be reached is an InputError naming ``mlflow``. Call :meth:`finish`
    once training ends, however it ends."""

    def __init__(self, uri, run, run_id=None, name=None):
        super().__init__()
        from mlflow.tracking import MlflowClient

        self.uri, self.run = uri, RunDirectory(run.path)
        try:
            self.client = MlflowClient(tracking_uri=uri)
            if run_id is None:
                self.run_id = self.client.create_run(
                    self._experiment_id(), run_name=name,
                    tags={"tfvae.run_dir": str(self.run.path.resolve())}).info.run_id
            else:
                self.client.get_run(run_id)  # still there
                self.client.update_run(run_id, status="RUNNING")
                self.run_id = run_id
            self.logged_epochs = {int(m.step) for m in
                                  self.client.get_metric_history(self.run_id, _EVERY_ROW)}
        except Exception as exc:  # MLflow raises its own, requests' and the stores' errors
            expected = ("a reachable MLflow tracking server" if run_id is None
                        else f"the tracking server of the run's MLflow run {run_id}")
            raise InputError("mlflow", expected, f"{uri!r}: {type(exc).__name__}: "
                             f"{_first_line(exc)}") from exc

    def _experiment_id(self):
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "Default"
        experiment = self.client.get_experiment_by_name(name)
        return (experiment.experiment_id if experiment is not None
                else self.client.create_experiment(name))

    def on_train_begin(self, logs=None):
        def log():
            self._log_params(flat_settings(self.run.read_config()))
            self._log_files(self.run.config_path)
            # A resume: the epochs of metrics.csv a killed run left unlogged.
            self._log_new_rows()

        self._warn_on_failure("the run's settings", log)

    def on_epoch_end(self, epoch, logs=None):
        # Called after the run's own callbacks: metrics.csv holds the epoch if it finished.
        self._warn_on_failure("the epoch's metrics", self._log_new_rows)

    def finish(self, status, figures=None):
        """Log what is left and end the MLflow run with ``status`` (FINISHED, KILLED or
        FAILED); ``figures``: the last epoch's pictures by name, uint8 [H, W, C]
        (``EpochSummaries.figures``). Errors are warnings: the run directory holds everything,
        whatever the server."""
        def log():
            self._log_new_rows()
            files = [self.run.config_path, self.run.metrics_path, self.run.path / self.run.LOG,
                     self.run.state_path]
            if status == "FINISHED":
                files.append(self.run.checkpoint_path("model"))
                self._log_figures(figures or {})
            self._log_files(*[path for path in files if path.is_file()])
            self.client.set_terminated(self.run_id, status)

        self._warn_on_failure(f"the end of the run ({status})", log)

    def _log_params(self, settings):
        from mlflow.entities import Param, RunTag

        logged = self.client.get_run(self.run_id).data.params
        values = {key: str(value) for key, value in settings.items()}
        new = [Param(key, value) for key, value in values.items() if key not in logged]
        changed = [RunTag(key, value) for key, value in values.items()
                   if key in logged and logged[key] != value]
        for start in range(0, len(new), _PARAMS_PER_REQUEST):
            self.client.log_batch(self.run_id, params=new[start:start + _PARAMS_PER_REQUEST])
        if changed:
            self.client.log_batch(self.run_id, tags=changed)

    def _log_new_rows(self):
        """Log each metrics.csv row the MLflow run lacks, its numbers as they are there."""
        from mlflow.entities import Metric

        rows = [row for row in self.run.read_metrics()
                if int(row["epoch"]) not in self.logged_epochs]
        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, int(row["epoch"])) for row in rows
                   for key, value in row.items()
                   if key != "epoch" and isinstance(value, float) and math.isfinite(value)]
        for start in range(0, len(metrics), _METRICS_PER_REQUEST):
            self.client.log_batch(self.run_id,
                                  metrics=metrics[start:start + _METRICS_PER_REQUEST])
        self.logged_epochs.update(int(row["epoch"]) for row in rows)

    def _log_files(self, *paths):
        for path in paths:
            self.client.log_artifact(self.run_id, str(path))

    def _log_figures(self, pictures):
        if not pictures:
            return
        with tempfile.TemporaryDirectory(prefix="tfvae-figures-") as folder:
            for name, pixels in pictures.items():
                Path(folder, f"{name}.png").write_bytes(images.png_bytes(pixels))
            self.client.log_artifacts(self.run_id, folder, "figures")

    def _warn_on_failure(self, what, log):
        try:
            log()
        except Exception as exc:  # tracking never stops or fails the training it records
            print(render(f"tfvae: warning: MLflow ({arg('mlflow', self.uri)}): could not log "
                         f"{what}: {type(exc).__name__}: {_first_line(exc)}"), file=sys.stderr)


def _first_line(exc):
    return (str(exc).strip().splitlines() or [""])[0][:300]


def flat_settings(config):
    """The settings of a run's ``config``, one level deep: ``model_type`` and ``SECTION.KEY``
    (``SECTION.KEY.INNER`` inside a dict, such as an optimizer object's record), a list as JSON
    text; for MLflow's parameters and TensorBoard's HParams. A list of over
    ``_LONGEST_SETTING`` characters is left out: it is fitted data (a table's feature
    statistics), not a setting."""
    import json

    flat = {"model_type": config["model_type"]}

    def add(prefix, values):
        for key, value in sorted(values.items()):
            if isinstance(value, dict):
                add(f"{prefix}{key}.", value)
            elif isinstance(value, (list, tuple)):
                text = json.dumps(value)
                if len(text) <= _LONGEST_SETTING:
                    flat[f"{prefix}{key}"] = text
            else:
                flat[f"{prefix}{key}"] = value

    for section in ("model", "data", "train"):
        add(f"{section}.", config[section])
    return flat


# MLflow keeps parameter values of up to 6000 characters; a setting is far shorter.
_LONGEST_SETTING = 500
