"""tfvae's MIWAE imputation on ADBench tables with values removed completely at random, beside
mean imputation and scikit-learn's KNNImputer and IterativeImputer: RMSE over the removed
entries (on standardized columns) and seconds, per dataset, rate and seed, and their means.

    python benchmarks/imputation.py [--datasets 6_cardio ...] [--seeds 0 1 2] [--rates 0.2 0.5]
                                    [--max-rows 12000] [--epochs N] [--max-steps 3000]
                                    [--impute-samples 1000] [--peers mean knn iterative]
                                    [--data-dir DIR] [--peers-python PYTHON] [--out DIR] [--json]

Each table's X (its labels unused) is standardized by the mean and standard deviation of each
column over all its rows (a constant column only centred); a table of more than ``--max-rows``
rows keeps that many, the first after a shuffle seeded by 0 (the same rows for every seed and
rate). For each seed and rate p, one mask removes each value with chance p (a row that loses
every value keeps one, at random); the holed table is handed to every contender as a temporary
.npz, and each fills it in a child process of its own (``common.run_child``). RMSE is over the
removed entries of the whole table, pooled over its columns.

tfvae, the MIWAE setup of Mattei & Frellsen (2019) with one set of settings for every table:
``tfvae.VAE(image_shape=(D,), likelihood="normal", gaussian_scale="network",
latent_dim=min(10, D - 1), hidden=128, depth=2, activation="tanh", objective="iwae",
num_samples=20, allow_missing=True, feature_mean/feature_scale`` from
``fit_feature_statistics`` of the holed table), Adam 1e-3, batch 64, 200 epochs or as many as
stay within ``--max-steps`` steps, trained on the holed table itself (imputation is transductive,
as in the paper), then ``tfvae.impute(model, holed, num_samples=--impute-samples)``. Its seconds
are the fit and the imputation.

The peers run in another interpreter (``--peers-python``, else ``$IMPUTATION_PEERS_PYTHON``, else
``/work/peers-anomaly-venv/bin/python``, with scikit-learn; never tfvae's dependencies), default
settings, IterativeImputer seeded by the seed (``imputation_peers.py``). Mean imputation needs
only numpy and runs in this interpreter. The peers the other interpreter cannot import are named
on one line and left out. Seconds are each method's imputation without its imports and start-up.

Prints a table per dataset (means and standard deviations over the seeds), the RMSE and seconds
of every contender on every dataset with their means over the datasets; writes
``benchmarks/results/imputation.json`` (``--out DIR``: there instead).
"""

import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from common import ROOT, add_out, machine, print_table, run_child, write_results
import imputation_peers as peers

HERE = Path(__file__).resolve().parent
DATA_DIR = ROOT.parent / "shared" / "data" / "adbench"
DATASETS = ("6_cardio", "23_mammography", "28_pendigits", "31_satimage-2", "32_shuttle",
            "38_thyroid")
PEERS_VENV_PYTHON = "/work/peers-anomaly-venv/bin/python"
# tfvae's settings, one set for every table (MIWAE's: 128 units, K = 20, Adam 1e-3, batch 64).
HIDDEN, DEPTH, ACTIVATION, BATCH, LEARNING_RATE, TRAIN_SAMPLES = 128, 2, "tanh", 64, 1e-3, 20
MAX_EPOCHS, MAX_STEPS = 200, 3000
MAX_ROWS = 12_000


def latent_dim(features):
    return max(1, min(10, features - 1))


def default_epochs(rows, max_steps=MAX_STEPS):
    """200 epochs, or fewer where they would pass ``max_steps`` steps of 64 rows."""
    return max(1, min(MAX_EPOCHS, max_steps // math.ceil(rows / BATCH)))


def table(path, max_rows):
    """X of an ADBench .npz, at most ``max_rows`` rows (the first after a shuffle seeded by 0),
    each column standardized over those rows: float64 [N, D]."""
    with np.load(path) as data:
        x = data["X"].astype(np.float64)
    if max_rows and len(x) > max_rows:
        x = x[np.sort(np.random.default_rng(0).permutation(len(x))[:max_rows])]
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def mask(shape, rate, seed, name):
    """Which entries to remove: each with chance ``rate``, from a generator seeded by the seed,
    the rate and the dataset; a row that would lose every value keeps one, at random."""
    rng = np.random.default_rng([seed, round(rate * 1000), zlib.crc32(name.encode())])
    removed = rng.random(shape) < rate
    empty = np.flatnonzero(removed.all(axis=1))
    removed[empty, rng.integers(shape[1], size=len(empty))] = False
    return removed


def rmse(filled, truth, removed):
    return float(np.sqrt(np.mean((filled[removed] - truth[removed]) ** 2)))


# -- tfvae, in a child process -------------------------------------------------------------

def child(holed_path, seed, epochs, impute_samples, out):
    """Train tfvae's VAE on a holed table and fill it; write the completed table to ``out``;
    print a JSON line with the seconds."""
    import keras

    import tfvae
    from tfvae.layers.standardize import fit_feature_statistics

    seed, epochs, impute_samples = int(seed), int(epochs), int(impute_samples)
    x = peers.read(holed_path).astype(np.float32)
    keras.utils.set_random_seed(seed)  # the initial weights and fit's shuffling
    start = time.perf_counter()
    feature_mean, feature_scale = fit_feature_statistics(x)
    features = x.shape[1]
    model = tfvae.VAE(image_shape=(features,), likelihood="normal", gaussian_scale="network",
                      latent_dim=latent_dim(features), hidden=HIDDEN, depth=DEPTH,
                      activation=ACTIVATION, objective="iwae", num_samples=TRAIN_SAMPLES,
                      allow_missing=True, feature_mean=feature_mean,
                      feature_scale=feature_scale, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE))
    history = model.fit(x, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    filled = tfvae.impute(model, x, num_samples=impute_samples, seed=seed)
    impute_seconds = time.perf_counter() - start
    np.savez(out, x=filled)
    print(json.dumps({"epochs": epochs, "steps": epochs * math.ceil(len(x) / BATCH),
                      "final_loss": float(history.history["loss"][-1]),
                      "fit_seconds": fit_seconds, "impute_seconds": impute_seconds,
                      "seconds": fit_seconds + impute_seconds}))


# -- the peers' interpreter ----------------------------------------------------------------

def imports_sklearn(python):
    """Whether ``python`` runs and imports scikit-learn."""
    try:
        done = subprocess.run([python, "-c", "import sklearn"], capture_output=True, timeout=600)
        return done.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def summarize(values):
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS),
                        help="ADBench tables by file stem (default: the six)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.2, 0.5],
                        help="shares of the values removed (default: 0.2 0.5)")
    parser.add_argument("--max-rows", type=int, default=MAX_ROWS,
                        help=f"keep at most N rows of a table (default {MAX_ROWS:,}; 0: all)")
    parser.add_argument("--epochs", type=int,
                        help=f"tfvae's epochs on every table (default: {MAX_EPOCHS}, or fewer "
                             f"where they would pass --max-steps)")
    parser.add_argument("--max-steps", type=int, default=MAX_STEPS,
                        help=f"tfvae's training steps at most, without --epochs (default "
                             f"{MAX_STEPS:,})")
    parser.add_argument("--impute-samples", type=int, default=1000,
                        help="draws of z per row of tfvae.impute (default 1000)")
    parser.add_argument("--peers", nargs="+", choices=list(peers.METHODS),
                        default=list(peers.METHODS), help="the peers to run (default: all)")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("ADBENCH_DIR", DATA_DIR)),
                        help="the folder of the .npz tables (default: $ADBENCH_DIR, else "
                             f"{DATA_DIR})")
    parser.add_argument("--peers-python",
                        default=os.environ.get("IMPUTATION_PEERS_PYTHON", PEERS_VENV_PYTHON),
                        help="an interpreter with scikit-learn (default: "
                             f"$IMPUTATION_PEERS_PYTHON, else {PEERS_VENV_PYTHON})")
    add_out(parser, "imputation.json")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    started, load_at_start = time.perf_counter(), round(os.getloadavg()[0], 2)
    sklearn = imports_sklearn(args.peers_python)
    methods = [m for m in args.peers if sklearn or not peers.NEEDS[m]]
    missing = [peers.METHODS[m] for m in args.peers if m not in methods]
    if missing:
        print(f"skipping {', '.join(missing)}: scikit-learn not importable by "
              f"{args.peers_python} (pass --peers-python or $IMPUTATION_PEERS_PYTHON)",
              file=sys.stderr)
    contenders = ["tfvae", *(peers.METHODS[m] for m in methods)]
    runs, fits = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            truth = table(args.data_dir / f"{name}.npz", args.max_rows)
            epochs = args.epochs or default_epochs(len(truth), args.max_steps)
            for rate in args.rates:
                for seed in args.seeds:
                    removed = mask(truth.shape, rate, seed, name)
                    holed_path = Path(tmp) / f"{name}_{rate}_{seed}.npz"
                    np.savez(holed_path, x=np.where(removed, np.nan, truth))
                    filled, seconds = {}, {}
                    out = Path(tmp) / "tfvae.npz"
                    result = run_child([HERE / "imputation.py", "--child", holed_path, seed,
                                        epochs, args.impute_samples, out])
                    filled["tfvae"], seconds["tfvae"] = peers.read(out), result["seconds"]
                    fits.append({"dataset": name, "rate": rate, "seed": seed, **result})
                    for method in methods:
                        out = Path(tmp) / f"{method}.npz"
                        python = args.peers_python if peers.NEEDS[method] else sys.executable
                        done = run_child([HERE / "imputation_peers.py", holed_path, method, seed,
                                          "--out", out], python=python)
                        filled[peers.METHODS[method]] = peers.read(out)
                        seconds[peers.METHODS[method]] = done["seconds"]
                    for contender in contenders:
                        runs.append({"dataset": name, "rate": rate, "seed": seed,
                                     "contender": contender, "rows": len(truth),
                                     "removed": int(removed.sum()),
                                     "rmse": rmse(filled[contender], truth, removed),
                                     "seconds": seconds[contender]})
                    if not args.json:
                        print(f"{name} {rate:.0%} seed {seed}: " + ", ".join(
                            f"{r['contender']} {r['rmse']:.4f}" for r in runs[-len(contenders):]),
                            flush=True)
    report = {
        "machine": machine(),
        "command": shlex.join(["python", "benchmarks/imputation.py",
                               *(sys.argv[1:] if argv is None else map(str, argv))]),
        "seconds": time.perf_counter() - started, "load_average_1min_at_start": load_at_start,
        "datasets": args.datasets, "seeds": args.seeds, "rates": args.rates,
        "max_rows": args.max_rows, "skipped": missing,
        "peers_python": args.peers_python,
        "tfvae_settings": {"likelihood": "normal", "gaussian_scale": "network",
                           "latent_dim": "min(10, D - 1)", "hidden": HIDDEN, "depth": DEPTH,
                           "activation": ACTIVATION, "objective": "iwae",
                           "num_samples": TRAIN_SAMPLES, "batch_size": BATCH,
                           "optimizer": f"adam {LEARNING_RATE}",
                           "epochs": args.epochs or f"min({MAX_EPOCHS}, {args.max_steps} // "
                                                    f"steps per epoch)",
                           "impute_samples": args.impute_samples},
        "contenders": contenders, "runs": runs, "tfvae_fits": fits,
    }
    report["summary"] = summary(runs, args.datasets, args.rates, contenders)
    write_results("imputation", args.out, **{k: v for k, v in report.items() if k != "machine"})
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report, args.datasets, args.rates, contenders)


def summary(runs, datasets, rates, contenders):
    """{rate: {dataset: {contender: means and sds over the seeds}, "mean": means over the
    datasets}}, the rate as text ("0.2")."""
    table_ = {}
    for rate in rates:
        part = {}
        for name in datasets:
            part[name] = {}
            for contender in contenders:
                mine = [r for r in runs if r["dataset"] == name and r["rate"] == rate
                        and r["contender"] == contender]
                row = {}
                for field in ("rmse", "seconds"):
                    row[field], row[field + "_sd"] = summarize([r[field] for r in mine])
                part[name][contender] = row
        part["mean"] = {c: {f: statistics.fmean(part[d][c][f] for d in datasets)
                            for f in ("rmse", "seconds")} for c in contenders}
        table_[str(rate)] = part
    return table_


def print_report(report, datasets, rates, contenders):
    m, s = report["machine"], report["summary"]
    print(f"\n{m['cpu']} ({m['cores']} cores, load {report['load_average_1min_at_start']} at "
          f"the start, {m['load_average_1min']} at the end); {report['command']}; "
          f"seeds {report['seeds']}")
    if report["skipped"]:
        print(f"skipped: {', '.join(report['skipped'])}")
    fits = report["tfvae_fits"]
    for name in datasets:
        runs = [r for r in report["runs"] if r["dataset"] == name]
        fit = next(f for f in fits if f["dataset"] == name)
        print(f"\n{name}: {runs[0]['rows']:,} rows; tfvae {fit['epochs']} epochs "
              f"({fit['steps']:,} steps)")
        print_table([{"contender": c, "rate": rate, **s[str(rate)][name][c]}
                     for rate in rates for c in contenders],
                    ["contender", "rate", "rmse", "rmse_sd", "seconds"])
    for rate in rates:
        for field in ("rmse", "seconds"):
            print(f"\n{field} at {rate:.0%} removed, mean over seeds; last column the mean "
                  f"over datasets:")
            print_table([{"contender": c, **{d: s[str(rate)][d][c][field] for d in datasets},
                          "mean": s[str(rate)]["mean"][c][field]} for c in contenders],
                        ["contender", *datasets, "mean"])
    print(f"\ntotal {report['seconds']:,.0f} s")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:])
    else:
        main()
