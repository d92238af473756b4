"""Shared by the benchmarks: the float32 matmul bound, FLOP counts, memory, child processes.

Each measurement runs in its own process (``run_child``), so peak resident memory is that of one
configuration and one run's compiled code or caches cannot speed up the next.
"""

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout: import tfvae from it
    sys.path.insert(0, str(ROOT))
# TensorFlow's start-up notes (no GPU driver, CPU features) would interleave with the figures.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def env():
    """The environment for child processes: tfvae importable, TensorFlow's start-up notes quiet."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return e


def run_child(args, python=None, timeout=3600):
    """Run ``python args...`` and return the JSON object printed on its last stdout line."""
    proc = subprocess.run([python or sys.executable, *map(str, args)], env=env(),
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_rss_mib():
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib():
    """This process's resident memory now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


MATMUL_SECONDS = 0.5  # of back-to-back products per matrix size, for the matmul peak
MATMUL_SIZES = (256, 512, 1024, 2048)  # the square matrices' sides, for the matmul peak


def add_matmul_seconds(parser):
    """The ``--matmul-seconds`` and ``--matmul-sizes`` flags of the scripts that measure the
    matmul peak."""
    parser.add_argument("--matmul-seconds", type=float, default=MATMUL_SECONDS,
                        help=f"seconds of back-to-back products per matrix size when measuring "
                             f"the matmul peak (default {MATMUL_SECONDS}; less gives a quick, "
                             f"lower peak)")
    parser.add_argument("--matmul-sizes", default=",".join(map(str, MATMUL_SIZES)),
                        help=f"the square matrices' sides when measuring the matmul peak, "
                             f"comma-separated (default {','.join(map(str, MATMUL_SIZES))}; "
                             f"smaller ones give a quick, lower peak)")


def matmul_sizes(text):
    """``--matmul-sizes`` as a tuple of sides."""
    return tuple(int(n) for n in str(text).split(","))


def add_out(parser, writes):
    """The ``--out`` flag of the scripts that write results (and figures) into the checkout."""
    parser.add_argument("--out", type=Path,
                        help=f"write {writes} into this folder instead (default: where the "
                             f"documentation takes them from)")


def matmul_peak_gflops(sizes=MATMUL_SIZES, seconds=MATMUL_SECONDS, repeats=3,
                       dtype="float32", jit_compile=False):
    """The best matrix-multiply rate TensorFlow reaches here in ``dtype``, over a few square
    sizes (``jit_compile``: through XLA rather than TensorFlow's own kernels, which on a CPU are
    oneDNN's).

    Each size runs back-to-back products for about ``seconds``, ``repeats`` times; the best rate
    counts, as other processes on a shared machine only ever slow it down. A GPU adds larger
    sizes, which it needs to reach its peak.
    """
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        sizes = (*sizes, 4096, 8192)
    best = 0.0
    for n in sizes:
        a = tf.cast(tf.random.normal([n, n]), dtype)
        b = tf.cast(tf.random.normal([n, n]), dtype)
        matmul = tf.function(lambda a, b: tf.linalg.matmul(a, b), jit_compile=jit_compile)
        matmul(a, b).numpy()
        start = time.perf_counter()
        matmul(a, b).numpy()
        reps = max(1, int(seconds / max(time.perf_counter() - start, 1e-6)))
        flops = 2.0 * n ** 3
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(reps):
                c = matmul(a, b)
            c.numpy()
            best = max(best, flops * reps / (time.perf_counter() - start))
    return best / 1e9


def mlp_vae_macs(hidden, latent_dim, pixels=784):
    """Multiply-adds of one forward pass: encoder x->h->(mu, sigma), decoder z->h->logits."""
    return pixels * hidden + hidden * 2 * latent_dim + latent_dim * hidden + hidden * pixels


def training_flops_per_example(hidden, latent_dim, pixels=784):
    """FLOPs of one training example: forward, weight gradients, and input gradients for every
    layer but the first (no gradient flows into x). 2 FLOPs per multiply-add; elementwise work
    (activations, sampling, the likelihood, the optimizer) is not counted."""
    macs = mlp_vae_macs(hidden, latent_dim, pixels)
    return 2 * (3 * macs - pixels * hidden)


def decoder_flops(hidden, latent_dim, pixels=784):
    """FLOPs of one decoder pass z -> logits."""
    return 2 * (latent_dim * hidden + hidden * pixels)


# CPU flags that decide which matrix units a figure had: AVX-512, its bfloat16 dot products, AMX.
MATRIX_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def machine():
    """The CPU's name and matrix features (``tfvae.training.machine``), its core count and the load when
    measured."""
    from tfvae.training.machine import cpu_flags, cpu_name

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"cpu": cpu_name(), "matrix_features": [f for f in MATRIX_FLAGS if f in cpu_flags()],
            "cores": os.cpu_count(), "load_average_1min": round(load, 2)}


def write_results(name, out=None, **fields):
    """Write ``fields`` with the machine to ``benchmarks/results/NAME.json`` (or ``OUT/NAME.json``);
    print the path."""
    out = Path(out or ROOT / "benchmarks" / "results") / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), **fields}, indent=2) + "\n")
    print(f"written: {out}")


def print_table(rows, columns):
    """Rows of dicts as an aligned text table."""
    cells = [[str(c) for c in columns]] + [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for i, row in enumerate(cells):
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value):
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return "" if value is None else str(value)
