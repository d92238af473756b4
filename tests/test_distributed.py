"""Training under tf.distribute: two replicas compute what one device computes; workers agree.

Each case runs ``distributed_worker.py`` in subprocesses, since logical devices and collective
ops can be set up only before TensorFlow starts.
"""

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import cli_env
from tfvae.runs import RunDirectory

WORKER = Path(__file__).with_name("distributed_worker.py")
METRICS = ("train_elbo", "train_reconstruction", "train_kl", "test_elbo", "test_kl")


def start_worker(strategy, jobs, logical_cpus=1, env=None):
    """``jobs``: (run directory, weights file, settings), trained in turn by one process."""
    jobs = json.dumps([{"run_dir": str(run_dir), "weights": str(weights), "settings": settings}
                       for run_dir, weights, settings in jobs])
    return subprocess.Popen([sys.executable, str(WORKER), strategy, str(logical_cpus), jobs],
                            env=env or cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(processes, timeout=600):
    for p in processes:
        out, _ = p.communicate(timeout=timeout)
        assert p.returncode == 0, out[-3000:]


def load_weights(path):
    with np.load(path) as f:
        return [f[k] for k in f.files]


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# A mixture prior's variables and a flow's (through TFP's bijectors) beside the encoder's and
# decoder's; and the hierarchy of latent groups on the residual body, whose per-group KL and
# top-down pass are its own.
STRUCTURES = {"mixture_and_flow": {"prior": "mog", "prior_components": 2, "posterior": "iaf",
                                   "flow_steps": 1},
              "latent_groups": {"architecture": "resnet", "latent_groups": 3, "latent_dim": 2,
                                "hidden": 8, "activation": "gelu"}}


# 65 training examples in batches of 64 leave one for two replicas; 33 test examples, one
# batch that two replicas cannot share evenly. oneDNN's convolutions fail on no rows.
RAGGED = {"architecture": "conv", "hidden": 8, "train_examples": 65, "test_examples": 33}
# Runs that the replicas refuse: a batch they cannot share, a first batch they cannot share.
REFUSED = {"uneven": {**RAGGED, "batch_size": 63}, "few": {**RAGGED, "train_examples": 33}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every run of the mirrored tests, from two processes that run side by side (each pays for
    TensorFlow's import once): each structure on one device and on two replicas, in the same
    order; then the ragged run and the refused ones on two replicas."""
    root = tmp_path_factory.mktemp("distributed")
    structures = list(STRUCTURES.items())
    one = start_worker("default", [(root / f"one_{name}", root / f"one_{name}.npz", settings)
                                   for name, settings in structures], 2)
    two = start_worker("mirrored", [
        *((root / f"two_{name}", root / f"two_{name}.npz", settings)
          for name, settings in structures),
        (root / "ragged", root / "ragged.npz", RAGGED),
        *((root / name, root / f"{name}.npz", settings) for name, settings in REFUSED.items())],
        2)
    finish([one, two])
    return root


@pytest.mark.parametrize("name", STRUCTURES)
def test_mirrored_on_two_devices_matches_one_device(name, runs):
    # The one-device run is XLA-compiled (the default) and the mirrored one is not, so this also
    # checks that compiled and uncompiled steps draw the same noise.
    one, two = runs / f"one_{name}", runs / f"two_{name}"
    assert json.loads((two / "config.json").read_text())["train"]["strategy"] == \
        "MirroredStrategy"
    rows_one, rows_two = (RunDirectory(path).read_metrics() for path in (one, two))
    assert len(rows_one) == len(rows_two) == 2
    for a, b in zip(rows_one, rows_two):
        for key in METRICS:
            # Sampling noise alone moves these by ~1e-3 relative; rounding by ~1e-5.
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-3), key
    for a, b in zip(load_weights(f"{one}.npz"), load_weights(f"{two}.npz")):
        np.testing.assert_allclose(a, b, atol=2e-3)


def test_mirrored_trains_where_a_replica_would_get_no_rows_and_refuses_an_uneven_batch(runs):
    rows = RunDirectory(runs / "ragged").read_metrics()
    assert len(rows) == 2 and all(np.isfinite(row[key]) for row in rows for key in METRICS)
    for name in REFUSED:
        assert not (runs / name).exists() and not (runs / f"{name}.npz").exists()
    assert (runs / "uneven.refused").read_text() == (
        "batch_size: expected a multiple of the 2 replicas that train in sync, got 63")
    assert (runs / "few.refused").read_text() == (
        "batch_size: expected at most the 33 training examples, a first batch that the 2 "
        "replicas cannot share evenly, got 64")


def test_multiworker_on_loopback_trains_and_workers_agree(tmp_path):
    hosts = [f"127.0.0.1:{port}" for port in free_ports(2)]
    workers = []
    for index in range(2):
        env = cli_env()
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": hosts},
                                       "task": {"type": "worker", "index": index}})
        workers.append(start_worker(
            "multiworker", [(tmp_path / f"run{index}", tmp_path / f"w{index}.npz", {})], env=env))
    finish(workers)
    rows = RunDirectory(tmp_path / "run0").read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(np.isfinite(r["train_elbo"]) for r in rows)
    assert rows[1]["train_elbo"] > rows[0]["train_elbo"]
    assert (tmp_path / "run0" / "model.keras").is_file()
    # Only the chief writes the run; the other worker's --out stays untouched.
    assert not (tmp_path / "run1").exists()
    w0, w1 = load_weights(tmp_path / "w0.npz"), load_weights(tmp_path / "w1.npz")
    assert len(w0) == len(w1) > 0
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)


def test_multiworker_without_tf_config_is_an_input_error(tmp_path, monkeypatch):
    from tfvae.errors import InputError
    from tfvae.training.pipeline import train

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(InputError, match="^strategy='multiworker': expected TF_CONFIG"):
        train(tmp_path / "run", strategy="multiworker", epochs=1)
    assert not (tmp_path / "run").exists()


def test_unknown_strategy_is_an_input_error(tmp_path):
    from tfvae.errors import InputError
    from tfvae.training.pipeline import train

    with pytest.raises(InputError, match="^strategy: expected"):
        train(tmp_path / "run", strategy="horovod", epochs=1)
