"""Every script in benchmarks/ runs at a tiny size and prints its figures, so a changed interface
fails here rather than in a measurement months later. Only the output's shape is asserted (its
header, its columns, that numbers are printed), never a figure: machines differ.

Most scripts run in this process (TensorFlow is imported once), their child processes too: the
child script runs as ``__main__`` with the argv ``common.run_child`` would give it, so a caller
and its child that disagree on arguments fail as they would apart. ``train_throughput.py``
keeps its real child processes, to cover ``common.run_child`` itself.
"""

import contextlib
import importlib.util
import io
import json
import re
import runpy
import sys
from pathlib import Path

import pytest

from conftest import ROOT

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


@pytest.fixture
def children_here(monkeypatch, common):
    """``common.run_child`` without the process: the child script runs here as ``__main__``
    with the same argv, and its last stdout line is read as JSON. The matmul peak is measured
    briefly: its figure is not under test."""
    def run_here(args, python=None, timeout=None):
        assert python in (None, sys.executable), f"{python}: only this interpreter runs here"
        argv = [str(a) for a in args]
        out = io.StringIO()
        with monkeypatch.context() as m:
            m.setattr(sys, "argv", argv)
            m.syspath_prepend(str(Path(argv[0]).parent))
            with contextlib.redirect_stdout(out):
                try:
                    runpy.run_path(argv[0], run_name="__main__")
                except SystemExit as exit:
                    assert exit.code in (None, 0), f"{argv} exited with {exit.code}"
        return json.loads(out.getvalue().strip().splitlines()[-1])

    monkeypatch.setattr(common, "run_child", run_here)
    monkeypatch.setattr(common, "MATMUL_SECONDS", 0.01)
    return run_here


def table(text, columns):
    """The rows under the header line of ``common.print_table``'s table with ``columns``."""
    lines = text.splitlines()
    header = [i for i, line in enumerate(lines) if line.split() == columns]
    assert header, f"no table with columns {columns} in:\n{text}"
    rows = []
    for line in lines[header[0] + 2:]:
        if not line.strip() or set(line.split()[0]) <= set("-"):
            break
        rows.append(line)
    assert rows, text
    return rows


def test_train_throughput_in_child_processes(script, capsys):
    script("train_throughput.py").main(
        ["--configs", "relu", "--xla", "off", "--epochs", "2", "--train-examples", "256",
         "--matmul-seconds", "0.01"])
    out = capsys.readouterr().out
    assert re.search(rf"matmul peak float32 {NUMBER} GFLOP/s, bfloat16 {NUMBER} \(TensorFlow\), "
                     rf"{NUMBER} \(XLA\); 2 epochs of 256 MNIST images", out), out
    columns = ["config", "xla", "mixed_precision", "batch", "optimizer", "steps_per_execution",
               "examples_per_second", "median_examples_per_second", "peak_rss_mib",
               "matmul_bound_examples_per_second", "fraction_of_bound"]
    [row] = table(out, columns)
    assert re.fullmatch(rf"\s*relu\s+off\s+none\s+128\s+adam\s+2(\s+{NUMBER}){{5}}", row), row


def test_log_likelihood(script, children_here, capsys):
    script("log_likelihood.py").main(["--examples", "20", "--samples", "10", "--batch-size",
                                      "10"])
    out = capsys.readouterr().out
    assert re.search(rf"float32 matmul peak {NUMBER} GFLOP/s", out), out
    assert re.search(r"log p\(x\), k = 10, 20 MNIST test images \(0\.2% of the test set\), "
                     r"model paper \(784-500-20\), XLA off:", out), out
    assert re.search(rf"{NUMBER} s \({NUMBER} ms per image; {NUMBER} s for all 10,000\)", out)
    assert re.search(rf"mean log p\(x\) {NUMBER} nats", out), out


def test_memory(script, capsys):
    script("memory.py").main(["--epochs", "2", "--train-examples", "256", "--xla", "off"])
    out = capsys.readouterr().out
    assert re.findall(rf"epoch +(\d+): RSS +{NUMBER} MiB", out) == ["1", "2"], out
    assert re.search(rf"growth from the end of epoch 2 to the end of epoch 2: \+?{NUMBER} MiB",
                     out), out


def test_compare_runs_tfvae_and_skips_missing_peers(script, children_here, capsys, tmp_path):
    script("compare/run.py").main(
        ["--rounds", "1", "--epochs", "2", "--train-examples", "256",
         "--likelihood-examples", "20", "--likelihood-samples", "10",
         "--torch-python", str(tmp_path / "no-such-python")])
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipping")]
    assert len(skipped) == 1 and "PyTorch and Pythae" in skipped[0], captured.err
    out = captured.out
    assert re.search(rf"round 1: tfvae {NUMBER} ex/s, keras\.io way {NUMBER} ex/s\n", out), out
    assert re.search(rf"log p\(x\), k = 10, 20 test images, seconds:\nround 1: tfvae {NUMBER} s",
                     out), out
    assert re.search(rf"training: tfvae / keras\.io way speed: {NUMBER} \(per round "
                     rf"\[{NUMBER}\]\)", out), out
