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


def start_worker(strategy, run_dir, weights, logical_cpus=1, env=None, extra=None):
    """``extra``: model settings as JSON, added to the worker's."""
    return subprocess.Popen(
        [sys.executable, str(WORKER), strategy, str(run_dir), str(weights), str(logical_cpus),
         *([extra] if extra else [])],
        env=env or cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(processes, timeout=300):
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


@pytest.mark.parametrize("name", STRUCTURES)
def test_mirrored_on_two_devices_matches_one_device(name, tmp_path):
    # The one-device run is XLA-compiled (the default) and the mirrored one is not, so this also
    # checks that compiled and uncompiled steps draw the same noise.
    structure = json.dumps(STRUCTURES[name])
    one = start_worker("default", tmp_path / "one", tmp_path / "one.npz", 2, extra=structure)
    two = start_worker("mirrored", tmp_path / "two", tmp_path / "two.npz", 2, extra=structure)
    finish([one, two])
    assert json.loads((tmp_path / "two" / "config.json").read_text())["train"]["strategy"] == \
        "MirroredStrategy"
    rows_one, rows_two = (RunDirectory(tmp_path / name).read_metrics() for name in ("one", "two"))
    assert len(rows_one) == len(rows_two) == 2
    for a, b in zip(rows_one, rows_two):
        for key in METRICS:
            # Sampling noise alone moves these by ~1e-3 relative; rounding by ~1e-5.
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-3), key
    for a, b in zip(load_weights(tmp_path / "one.npz"), load_weights(tmp_path / "two.npz")):
        np.testing.assert_allclose(a, b, atol=2e-3)


def test_mirrored_trains_where_a_replica_would_get_no_rows_and_refuses_an_uneven_batch(
        tmp_path):
    # 65 training examples in batches of 64 leave one for two replicas; 33 test examples, one
    # batch that two replicas cannot share evenly. oneDNN's convolutions fail on no rows.
    settings = {"architecture": "conv", "hidden": 8, "train_examples": 65, "test_examples": 33}
    ragged = start_worker("mirrored", tmp_path / "ragged", tmp_path / "ragged.npz", 2,
                          extra=json.dumps(settings))
    uneven = start_worker("mirrored", tmp_path / "uneven", tmp_path / "uneven.npz", 2,
                          extra=json.dumps({**settings, "batch_size": 63}))
    finish([ragged])
    rows = RunDirectory(tmp_path / "ragged").read_metrics()
    assert len(rows) == 2 and all(np.isfinite(row[key]) for row in rows for key in METRICS)
    out, _ = uneven.communicate(timeout=300)
    assert uneven.returncode != 0
    assert "batch_size: expected a multiple of the 2 replicas that train in sync, got 63" in out
    few = start_worker("mirrored", tmp_path / "few", tmp_path / "few.npz", 2,
                       extra=json.dumps({**settings, "train_examples": 33}))
    out, _ = few.communicate(timeout=300)
    assert few.returncode != 0
    assert ("batch_size: expected at most the 33 training examples, a first batch that the 2 "
            "replicas cannot share evenly, got 64") in out


def test_multiworker_on_loopback_trains_and_workers_agree(tmp_path):
    hosts = [f"127.0.0.1:{port}" for port in free_ports(2)]
    workers = []
    for index in range(2):
        env = cli_env()
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": hosts},
                                       "task": {"type": "worker", "index": index}})
        workers.append(start_worker("multiworker", tmp_path / f"run{index}",
                                    tmp_path / f"w{index}.npz", env=env))
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
