"""Shared fixtures: the repository root, the shared data folder, a CLI runner, a tiny trained run,
and the runner of benchmarks/ scripts."""

import contextlib
import importlib.util
import io
import json
import math
import os
import runpy
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


# -- the scripts of benchmarks/, run here at a tiny size (test_benchmarks*.py) -----------------

BENCH = ROOT / "benchmarks"
NUMBER = r"-?[\d,]+(?:\.\d+)?(?:e[-+]?\d+)?"


def load_module(monkeypatch, path, name):
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path))
    monkeypatch.setitem(sys.modules, name, module)
    module.__spec__.loader.exec_module(module)
    return module


@pytest.fixture
def common(monkeypatch):
    """benchmarks/common.py as the scripts import it (``import common``), removed after the
    test with every path the scripts add to ``sys.path``."""
    monkeypatch.syspath_prepend(str(BENCH))
    return load_module(monkeypatch, BENCH / "common.py", "common")


@pytest.fixture
def script(monkeypatch, common):
    """Loads a benchmark script by its path under benchmarks/ as a module."""
    def load(relative):
        path = BENCH / relative
        monkeypatch.syspath_prepend(str(path.parent))
        return load_module(monkeypatch, path, "benchmark_" + path.stem)

    return load


def run_as_main(monkeypatch, argv):
    """Run the script ``argv[0]`` here as ``__main__`` with ``sys.argv`` = ``argv``, as
    ``python ARGV`` would; returns what it printed."""
    argv = [str(a) for a in argv]
    out = io.StringIO()
    with monkeypatch.context() as m:
        m.setattr(sys, "argv", argv)
        m.syspath_prepend(str(Path(argv[0]).parent))
        with contextlib.redirect_stdout(out):
            try:
                runpy.run_path(argv[0], run_name="__main__")
            except SystemExit as exit:
                assert exit.code in (None, 0), f"{argv} exited with {exit.code}"
    return out.getvalue()


@pytest.fixture
def children_here(monkeypatch, common):
    """``common.run_child`` without the process: the child script runs here as ``__main__``
    with the same argv, and its last stdout line is read as JSON. The matmul peak is measured
    briefly, on small matrices: its figure is not under test."""
    def run_here(args, python=None, timeout=None):
        assert python in (None, sys.executable), f"{python}: only this interpreter runs here"
        return json.loads(run_as_main(monkeypatch, args).strip().splitlines()[-1])

    from tfvae.training import execution

    monkeypatch.setattr(common, "run_child", run_here)
    monkeypatch.setattr(common, "MATMUL_SECONDS", 0.01)
    monkeypatch.setattr(common, "MATMUL_SIZES", (256,))
    # Nor is the timing of XLA against the uncompiled step that "auto" makes before a long run
    # (tests/test_fast_training.py tests it): a run of unbounded epochs trains uncompiled here.
    monkeypatch.setattr(execution, "XLA_NEVER_BELOW", math.inf)
    return run_here


def table(text, columns):
    """The rows under the header line of ``common.print_table``'s table with ``columns``."""
    lines = text.splitlines()
    header = [i for i, line in enumerate(lines) if line.split() == columns]
    assert header, f"no table with columns {columns} in:\n{text}"
    # Every row is padded to the header's width; the first line that is not ends the table.
    width = len(lines[header[0]])
    rows = []
    for line in lines[header[0] + 2:]:
        if len(line) != width:
            break
        rows.append(line)
    assert rows, text
    return rows


@pytest.fixture
def recorder(tmp_path):
    """An executable that stands for an interpreter or a command: it records its arguments, one
    JSON list a line, in the returned log, and prints ``{}``."""
    log = tmp_path / "calls.jsonl"
    stub = tmp_path / "record"
    stub.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import json, sys; "
                    f"open(sys.argv[1], \"a\").write(json.dumps(sys.argv[2:]) + \"\\n\"); "
                    f"print(\"{{}}\")' {log} \"$@\"\n")
    stub.chmod(0o755)
    return stub, log


def recorded(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


def skip_line(err):
    """The one line of a benchmark's stderr that names the peers it skips."""
    skipped = [line for line in err.splitlines() if line.startswith("skipping")]
    assert len(skipped) == 1, err
    return skipped[0]
