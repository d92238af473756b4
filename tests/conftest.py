"""Shared fixtures: the repository root, the shared data folder, a CLI runner, a tiny trained run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def xla_cache(tmp_path_factory):
    """The tests' own cache of measured XLA figures (``tfvae.training.execution.xla_figures``), never the
    user's; CLI subprocesses inherit it through the environment."""
    os.environ["TFVAE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module", autouse=True)
def global_seed():
    """Every test file starts from the same global random state, whichever files ran before it
    in its worker: a model's ``seed`` fixes its noise, but its initial weights and ``fit``'s
    shuffling come from Keras's global generator."""
    import keras

    keras.utils.set_random_seed(0)


@pytest.fixture(scope="session")
def shared_data():
    """``../shared/data`` beside the checkout; tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def cli_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


@pytest.fixture(scope="session")
def c_example(tmp_path_factory):
    """serving/c/tfvae_encode.c built against the tensorflow wheel's C API, once per session;
    skips the test where gcc is missing."""
    import shutil

    import tensorflow as tf

    directory = tmp_path_factory.mktemp("c_example")
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: building serving/c/tfvae_encode.c needs it")
    exe = Path(directory) / "tfvae_encode"
    build = subprocess.run(
        [gcc, "-O2", "-std=c11", "-Wall", "-Wextra", "-o", str(exe),
         str(ROOT / "serving" / "c" / "tfvae_encode.c"), "-I", tf.sysconfig.get_include(),
         "-L", tf.sysconfig.get_lib(), "-l:libtensorflow_cc.so.2",
         "-l:libtensorflow_framework.so.2", f"-Wl,-rpath,{tf.sysconfig.get_lib()}"],
        capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    assert "warning" not in build.stderr, build.stderr[-3000:]
    return exe


def run_cli(*args, cwd=None, timeout=600):
    """Run ``python -m tfvae ARGS`` in a subprocess; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "tfvae", *map(str, args)], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A VAE trained briefly on 1,000 MNIST digits: a run directory other tests read, never write."""
    from tfvae.training.pipeline import train

    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    train(run_dir, model_config={"latent_dim": 4, "hidden": 64},
          data_config={"name": "mnist", "train_examples": 1000, "test_examples": 200},
          epochs=2, batch_size=100, optimizer="adam", learning_rate=1e-3, seed=0, verbose=0)
    return run_dir
