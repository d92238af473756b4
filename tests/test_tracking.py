"""Tracking a run: MLflow (a real tracking server on localhost with a SQLite backend, read back
through MLflow's client) and TensorBoard's HParams dashboard (read by its own plugin)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from test_fast_training import TINY
from tfvae.cli import main
from tfvae.errors import InputError
from tfvae.models import VAE
from tfvae.runs import MLFLOW_RUN_ID, RunDirectory
from tfvae.training.tracking import flat_settings
from tfvae.training.pipeline import TrainingDiverged, train

mlflow = pytest.importorskip("mlflow")  # tfvae[tracking]; the test extra installs it

# The server starts in a few seconds on an idle machine; a busy one may take much longer.
SERVER_START_SECONDS = 180


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """`mlflow server` on a free localhost port, its runs in SQLite and its artifacts in a
    temporary folder; stopped when the module's tests are done."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = open(folder / "server.log", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            assert server.poll() is None, (folder / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as answer:
                    if answer.read().strip() == b"OK":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the MLflow server did not start"
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its workers
        try:
            # Its runs are thrown away with the folder: a graceful stop is not waited for long.
            server.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key),
                                             key=lambda m: m.step)]


def check_metrics_are_metrics_csv(client, run):
    """Each metric of the MLflow run is metrics.csv's column, epoch by epoch, and no more."""
    run_id = run.read_config()[MLFLOW_RUN_ID]
    rows = run.read_metrics()
    columns = [key for key in rows[0] if key != "epoch" and isinstance(rows[0][key], float)]
    assert {"train_elbo", "test_elbo", "test_kl", "seconds", "active_units"} <= set(columns)
    assert set(client.get_run(run_id).data.metrics) == set(columns)
    for key in columns:
        assert history(client, run_id, key) == [(int(row["epoch"]), row[key]) for row in rows], key


def artifact_paths(client, run_id, path=None):
    found = []
    for entry in client.list_artifacts(run_id, path):
        found += artifact_paths(client, run_id, entry.path) if entry.is_dir else [entry.path]
    return sorted(found)


def test_the_mlflow_server_holds_the_metrics_metrics_csv_holds_and_a_resume_continues_it(
        tmp_path, tracking_uri):
    client = mlflow.tracking.MlflowClient(tracking_uri)
    first = train(tmp_path / "run", epochs=1, mlflow=tracking_uri, **TINY)
    run = first.run
    config = run.read_config()
    assert config["train"]["mlflow"] == tracking_uri
    run_id = config[MLFLOW_RUN_ID]
    tracked = client.get_run(run_id)
    assert tracked.info.status == "FINISHED" and tracked.info.run_name == "run"
    check_metrics_are_metrics_csv(client, run)
    # The parameters are config.json's settings.
    settings = flat_settings(config)
    assert tracked.data.params == {key: str(value) for key, value in settings.items()}
    assert tracked.data.params["model.hidden"] == "16"
    assert tracked.data.params["train.epochs"] == "1"
    assert artifact_paths(client, run_id) == [
        "config.json", "figures/reconstructions.png", "figures/samples.png", "metrics.csv",
        "model.keras", "state.json", "train.log"]
    copy = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="metrics.csv",
                                                    dst_path=str(tmp_path / "copy"),
                                                    tracking_uri=tracking_uri))
    assert copy.read_bytes() == run.metrics_path.read_bytes()

    # A resume continues the same MLflow run, from the epoch where it stopped.
    train(run.path, epochs=2, resume=True, verbose=0)
    config = run.read_config()
    assert config[MLFLOW_RUN_ID] == run_id
    assert [r.info.run_id for r in client.search_runs([tracked.info.experiment_id])] == [run_id]
    tracked = client.get_run(run_id)
    assert tracked.info.status == "FINISHED"
    assert [int(row["epoch"]) for row in run.read_metrics()] == [1, 2]
    check_metrics_are_metrics_csv(client, run)
    # MLflow keeps a parameter's first value: the new total is a tag of its name.
    assert tracked.data.params["train.epochs"] == "1"
    assert tracked.data.tags["train.epochs"] == "2"
    copy = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="config.json",
                                                    dst_path=str(tmp_path / "copy2"),
                                                    tracking_uri=tracking_uri))
    assert json.loads(copy.read_text()) == config


def test_tfvae_train_mlflow_tracks_the_run_and_a_resume_keeps_its_server(tmp_path, tracking_uri,
                                                                          capsys):
    out = tmp_path / "cli run"
    common = ["--latent-dim", "3", "--hidden", "16", "--train-examples", "300",
              "--test-examples", "100", "--batch-size", "100", "--optimizer", "adam",
              "--learning-rate", "1e-3", "--quiet"]
    assert main(["train", "--out", str(out), "--epochs", "1", "--mlflow", tracking_uri,
                 *common]) == 0
    run = RunDirectory(out)
    config = run.read_config()
    assert config["train"]["mlflow"] == tracking_uri
    client = mlflow.tracking.MlflowClient(tracking_uri)
    tracked = client.get_run(config[MLFLOW_RUN_ID])
    assert tracked.info.run_name == "cli run" and tracked.info.status == "FINISHED"
    assert tracked.data.tags["tfvae.run_dir"] == str(out.resolve())
    check_metrics_are_metrics_csv(client, run)
    capsys.readouterr()
    # Its MLflow run is on that server: a resume may not move it.
    assert main(["train", "--out", str(out), "--epochs", "2", "--resume",
                 "--mlflow", "http://127.0.0.1:1"]) == 2
    error = capsys.readouterr().err
    assert f"--mlflow: expected {tracking_uri!r} as the run was started with" in error
    assert [int(row["epoch"]) for row in run.read_metrics()] == [1]


def test_a_diverged_run_is_a_failed_mlflow_run_with_its_good_epochs(tmp_path, tracking_uri,
                                                                     monkeypatch):
    # A penalty that turns NaN from step 3 on: epoch 1 (3 steps) is good, epoch 2 is not.
    monkeypatch.setattr(VAE, "_weight_penalty",
                        lambda self: tf.where(self.optimizer.iterations >= 3, np.nan, 0.0))
    with pytest.raises(TrainingDiverged):
        train(tmp_path / "run", epochs=3, mlflow=tracking_uri, **TINY)
    run = RunDirectory(tmp_path / "run")
    client = mlflow.tracking.MlflowClient(tracking_uri)
    run_id = run.read_config()[MLFLOW_RUN_ID]
    assert client.get_run(run_id).info.status == "FAILED"
    assert [int(row["epoch"]) for row in run.read_metrics()] == [1]
    check_metrics_are_metrics_csv(client, run)
    assert artifact_paths(client, run_id) == ["config.json", "metrics.csv", "state.json",
                                              "train.log"]


def test_a_bad_tracking_uri_or_no_mlflow_is_refused_before_anything_is_written(
        tmp_path, monkeypatch):
    with pytest.raises(InputError, match=r"^mlflow: expected an MLflow tracking URI"):
        train(tmp_path / "run", mlflow=5, **TINY)
    with pytest.raises(InputError, match=r"^mlflow: expected a reachable MLflow tracking "
                                         r"server, got 'nosuchscheme://x'"):
        train(tmp_path / "run", mlflow="nosuchscheme://x", epochs=1, **TINY)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    with pytest.raises(InputError, match=r"^mlflow: expected MLflow installed "
                                         r"\(pip install 'tfvae\[tracking\]'\)"):
        train(tmp_path / "run", mlflow="http://127.0.0.1:5000", **TINY)
    assert not (tmp_path / "run").exists()


# -- TensorBoard's HParams dashboard ----------------------------------------------------------

def hparams_plugin(logdir):
    """TensorBoard's HParams plugin over ``logdir``, as `tensorboard --logdir` runs it:
    ``ask(route, request)`` posts a request and returns the JSON answer."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams.hparams_plugin import HParamsPlugin
    from werkzeug.test import Client

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    plugin = HParamsPlugin(base_plugin.TBContext(
        logdir=str(logdir), data_provider=data_provider.MultiplexerDataProvider(mux, str(logdir)),
        multiplexer=mux))
    apps = plugin.get_plugin_apps()

    def ask(route, request):
        answer = Client(apps[route]).post(route, data=json.dumps(request))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.get_json()

    return ask


def test_the_hparams_dashboard_shows_each_runs_settings_and_final_metrics(tmp_path):
    runs = [train(tmp_path / name, epochs=2, **{**TINY, "model_config": {**TINY["model_config"],
                                                                            "hidden": hidden}})
            for name, hidden in (("narrow", 8), ("wide", 16))]
    ask = hparams_plugin(tmp_path)
    experiment = ask("/experiment", {"experimentName": ""})
    names = {info["name"] for info in experiment["hparamInfos"]}
    # Every setting that has a value (HParams has no None).
    assert names == {key for key, value in flat_settings(runs[0].config).items()
                     if value is not None}
    assert {"model.hidden", "train.learning_rate", "data.name", "model_type"} <= names
    groups = ask("/session_groups", {"startIndex": 0, "sliceSize": 10, "allowedStatuses": [
        "STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]})["sessionGroups"]
    assert len(groups) == 2
    for result in runs:
        # A group per run, named after its directory.
        (group,) = [g for g in groups if g["name"] == result.run.path.name]
        assert group["hparams"]["model.hidden"] == result.config["model"]["hidden"]
        assert group["hparams"]["train.optimizer"] == "adam"
        # The final metrics: the last epoch's, as metrics.csv holds them.
        last = result.run.read_metrics()[-1]
        final = {(m["name"]["group"], m["name"]["tag"]): m["value"] for m in group["metricValues"]}
        assert final[("validation", "epoch_elbo")] == pytest.approx(last["test_elbo"], rel=1e-6)
        assert final[("train", "epoch_elbo")] == pytest.approx(last["train_elbo"], rel=1e-6)
