"""Every parser of a user file, fed mutated, truncated and random versions of a valid file, reads
it or refuses it with one InputError, within a memory ceiling (benchmarks/fuzz.py runs the same
harness longer)."""

import subprocess
import sys

import pytest

from conftest import ROOT, cli_env

sys.path.insert(0, str(ROOT / "benchmarks"))
import fuzz  # noqa: E402

# Inputs per parser in the suite: loading a .keras file and decoding codes cost more than the
# others, so they get fewer.
EXAMPLES = {".keras": 12, ".tfvae": 25, "client metadata": 25, "client predict": 25}
NAMES = ["npy", "npz", "idx", "idx.gz", "image folder", "config.json", "state.json",
         "metrics.csv", ".keras", ".tfvae", "client metadata", "client predict"]


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    model, run_dir = fuzz.tiny_model_and_run(folder)
    targets = fuzz.Targets(folder, model=model, run_dir=run_dir)
    targets.add_client()
    yield targets
    targets.close()


@pytest.mark.parametrize("name", NAMES)
def test_every_mutation_is_read_or_refused_in_one_line(targets, name):
    assert sorted(targets.targets) == sorted(NAMES)
    valid, filename, parse = targets.targets[name]
    # The valid file itself is read.
    assert fuzz.check(parse, targets.folder / "valid" / name / filename, valid) is None
    tried, failures = fuzz.fuzz(targets, name, EXAMPLES.get(name, 60))
    assert tried >= EXAMPLES.get(name, 60) // 2
    assert not failures, failures[:3]


def test_a_lie_over_the_ceiling_is_reported(tmp_path):
    """The harness itself fails a parse that escapes or allocates too much."""
    import numpy as np

    def escapes(path):
        raise KeyError("x")

    def allocates(path):
        return np.ones(fuzz.MEMORY_CEILING + 2 ** 20, np.uint8)

    assert fuzz.check(escapes, tmp_path / "x", b"x").startswith("KeyError")
    assert "peak memory" in fuzz.check(allocates, tmp_path / "x", b"x")


def test_the_fuzz_script_runs_and_reports_counts():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--examples",
                           "3", "--only", "npy", "idx.gz", "state.json"], env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "npy" in proc.stdout and "9 inputs, 0 failures" in proc.stdout
