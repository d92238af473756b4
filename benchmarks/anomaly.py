"""tfvae as an unsupervised anomaly detector on ADBench tables, beside IsolationForest, ECOD and
PyOD's VAE: ROC-AUC, average precision and seconds per dataset and seed, and their means.

ADBench's unsupervised protocol (Han et al., NeurIPS 2022): for each seed, a stratified 70/30
split (``train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)``), the detector
fitted on the training rows without their labels, ROC-AUC and average precision of its scores
on the test rows. Every contender sees the same rows, standardized by the training rows' mean
and standard deviation.

    python benchmarks/anomaly.py [--datasets 6_cardio ...] [--seeds 0 1 2] [--epochs N]
                                 [--gaussian-scale 1.0|learned|network] [--max-rows N]
                                 [--importance-samples 64] [--peers iforest ecod pyod_vae]
                                 [--data-dir DIR] [--peers-python PYTHON] [--out DIR] [--json]

tfvae: ``tfvae.VAE(image_shape=(D,), likelihood="normal", gaussian_scale=1.0,
latent_dim=min(8, max(2, D // 2)), hidden=64, depth=2, activation="relu", seed=seed)``, Adam
1e-3, batch 128, 20 epochs or as many as stay within 10,000 steps (``--epochs`` gives every
dataset the same number), the same for every dataset; scored by ``tfvae.score`` with
``method="elbo"`` (its defaults) and, as a second row from the same fit, ``method="importance"``
with ``--importance-samples`` draws (0 leaves it out). A unit scale on standardized features
weighs every feature alike (a learned scale lets the features the model reconstructs best
dominate the score), and few epochs keep the model from fitting the anomalies among the
training rows; both were chosen on seed 0 of these tables (``--gaussian-scale learned
--epochs 100`` gives the settings chosen before any label was seen). Each seed trains in a
fresh child process (``common.run_child``).

The peers run in another interpreter (``--peers-python``, else ``$ANOMALY_PEERS_PYTHON``, else
``/work/peers-anomaly-venv/bin/python``: ``pyod==3.6.7``, scikit-learn and torch, never tfvae's
dependencies), one child process per dataset, seed and method (``anomaly_peers.py``): default
settings, seeded by the seed. The peers missing from it are named on one line and left out.

The split is made once per dataset and seed by scikit-learn's ``train_test_split`` in the peers'
interpreter and handed to every contender as row indices in a temporary .npz. Without
scikit-learn there, this script's own replica of that function (``stratified_split``) makes it,
and with scikit-learn it is checked to give the same rows in the same order. ``--max-rows N``
keeps the first N training rows (a tiny run); the test rows stay whole.

The metrics of every contender are computed by one code: ``sklearn.metrics`` in the peers'
interpreter, given each contender's scores; this script's exact rank-based ROC-AUC
(Mann-Whitney, ties counted half) and average precision are checked against it on every score
array, and stand in for it when the peers' interpreter lacks scikit-learn. Seconds are each
contender's fit and scoring, without its imports and start-up (tfvae's importance row: the same
fit plus its own scoring).

Prints a table per dataset (means and standard deviations over the seeds), then the ROC-AUC,
average precision and seconds of every contender on every dataset with their means over the
datasets; writes ``benchmarks/results/anomaly.json`` (``--out DIR``: there instead).
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
from pathlib import Path

import numpy as np

from common import ROOT, add_out, machine, print_table, run_child, write_results
import anomaly_peers as peers

HERE = Path(__file__).resolve().parent
DATA_DIR = ROOT.parent / "shared" / "data" / "adbench"
DATASETS = ("6_cardio", "23_mammography", "28_pendigits", "31_satimage-2", "32_shuttle",
            "38_thyroid")
PEERS_VENV_PYTHON = "/work/peers-anomaly-venv/bin/python"
# tfvae's settings, one set for every dataset.
HIDDEN, DEPTH, BATCH, LEARNING_RATE = 64, 2, 128, 1e-3
MAX_EPOCHS, MAX_STEPS = 20, 10_000
TFVAE_ROWS = ("tfvae_elbo", "tfvae_importance")


def latent_dim(features):
    return min(8, max(2, features // 2))


def default_epochs(train_rows):
    """20 epochs, or fewer where they would pass 10,000 steps of 128 rows."""
    steps_per_epoch = math.ceil(train_rows / BATCH)
    return max(1, min(MAX_EPOCHS, MAX_STEPS // steps_per_epoch))


# -- the split and the metrics, without scikit-learn -----------------------------------------

def _approximate_mode(class_counts, n_draws, rng):
    """scikit-learn's ``utils.extmath._approximate_mode``: draws per class, ties broken by
    ``rng``."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def stratified_split(y, seed, test_size=peers.TEST_SIZE):
    """Row indices (train, test) of scikit-learn's ``train_test_split(range(len(y)),
    test_size=test_size, stratify=y, random_state=seed)``, in its order: its
    ``StratifiedShuffleSplit`` step by step, drawing from ``RandomState(seed)`` as it does."""
    n = len(y)
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    _, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train, test = [], []
    for i in range(len(class_counts)):
        rows = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(rows[:n_i[i]])
        test.extend(rows[n_i[i]:n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def _midranks(scores):
    """Ranks 1..N of ``scores``, tied scores sharing the mean of their ranks."""
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def roc_auc(y, scores):
    """The area under the ROC curve: the chance that an anomaly outscores a normal row, ties
    counted half (Mann-Whitney U / (n1 n0))."""
    y, scores = np.asarray(y) == 1, np.asarray(scores, np.float64)
    positives, negatives = y.sum(), (~y).sum()
    u = _midranks(scores)[y].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def average_precision(y, scores):
    """Sum over the distinct thresholds, highest first, of the precision there times the recall
    it adds (scikit-learn's ``average_precision_score``: tied scores enter together)."""
    y, scores = np.asarray(y) == 1, np.asarray(scores, np.float64)
    order = np.argsort(-scores, kind="stable")
    ordered, hits = scores[order], y[order]
    last = np.r_[np.flatnonzero(ordered[1:] != ordered[:-1]), len(ordered) - 1]
    true_positives = np.cumsum(hits)[last]
    precision = true_positives / (last + 1)
    recall_added = np.diff(np.r_[0, true_positives]) / true_positives[-1]
    return float(np.sum(recall_added * precision))


def own_metrics(y, scores):
    return {"roc_auc": roc_auc(y, scores), "average_precision": average_precision(y, scores)}


# -- tfvae, in a child process -------------------------------------------------------------

def gaussian_scale(text):
    """--gaussian-scale: "learned", "network" or a fixed positive number."""
    if text in ("learned", "network"):
        return text
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected learned, network or a number > 0, got {text}")
    return value


def child(data, split, seed, epochs, importance_samples, scale, scores_out):
    """Train tfvae's VAE on one split's training rows; write the test rows' scores to
    ``scores_out``; print a JSON line with the seconds."""
    import keras

    import tfvae

    seed, epochs, importance_samples = int(seed), int(epochs), int(importance_samples)
    scale = gaussian_scale(scale)
    X, _ = peers.load(data)
    train, test = peers.read_split(split)
    keras.utils.set_random_seed(seed)  # the initial weights and fit's shuffling
    start = time.perf_counter()
    x_train, x_test = (x.astype(np.float32) for x in peers.standardized(X, train, test))
    features = X.shape[1]
    model = tfvae.VAE(image_shape=(features,), likelihood="normal", gaussian_scale=scale,
                      latent_dim=latent_dim(features), hidden=HIDDEN, depth=DEPTH,
                      activation="relu", seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE))
    history = model.fit(x_train, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    scores = {"tfvae_elbo": tfvae.score(model, x_test, method="elbo")}
    elbo_seconds = time.perf_counter() - start
    importance_seconds = None
    if importance_samples:
        start = time.perf_counter()
        scores["tfvae_importance"] = tfvae.score(model, x_test, method="importance",
                                                 num_samples=importance_samples)
        importance_seconds = time.perf_counter() - start
    np.savez(scores_out, **scores)
    print(json.dumps({"epochs": epochs, "steps": epochs * math.ceil(len(train) / BATCH),
                      "final_loss": float(history.history["loss"][-1]),
                      "fit_seconds": fit_seconds, "elbo_seconds": elbo_seconds,
                      "importance_seconds": importance_seconds}))


# -- the peers' interpreter ----------------------------------------------------------------

def peer_modules(python):
    """Which of the peers' modules ``python`` imports: {module: bool}, all False when it does
    not run."""
    modules = sorted({m for needs in peers.NEEDS.values() for m in needs})
    probe = ("import importlib, json\nfound = {}\nfor m in %r:\n    try:\n"
             "        importlib.import_module(m); found[m] = True\n"
             "    except Exception:\n        found[m] = False\nprint(json.dumps(found))" % modules)
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=600)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return dict.fromkeys(modules, False)


def summarize(values):
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS),
                        help="ADBench tables by file stem (default: the six)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int,
                        help=f"tfvae's epochs on every dataset (default: {MAX_EPOCHS}, or fewer "
                             f"where they would pass {MAX_STEPS:,} steps)")
    parser.add_argument("--gaussian-scale", type=gaussian_scale, default=1.0,
                        help="tfvae's p(x|z) scale: a fixed number, learned (one per feature) or "
                             "network (default: 1.0)")
    parser.add_argument("--peers", nargs="+", choices=list(peers.METHODS),
                        default=list(peers.METHODS), help="the peers to run (default: all)")
    parser.add_argument("--max-rows", type=int, default=0,
                        help="keep the first N training rows of each split (0: all)")
    parser.add_argument("--importance-samples", type=int, default=64,
                        help="draws of tfvae's importance-sampled score (0 leaves it out)")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("ADBENCH_DIR", DATA_DIR)),
                        help="the folder of the .npz tables (default: $ADBENCH_DIR, else "
                             f"{DATA_DIR})")
    parser.add_argument("--peers-python",
                        default=os.environ.get("ANOMALY_PEERS_PYTHON", PEERS_VENV_PYTHON),
                        help="an interpreter with pyod==3.6.7, scikit-learn and torch (default: "
                             f"$ANOMALY_PEERS_PYTHON, else {PEERS_VENV_PYTHON})")
    add_out(parser, "anomaly.json")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    started, load_at_start = time.perf_counter(), round(os.getloadavg()[0], 2)
    found = peer_modules(args.peers_python)
    methods = [m for m, needs in peers.NEEDS.items()
               if m in args.peers and all(found[n] for n in needs)]
    missing = [peers.METHODS[m] for m in args.peers if m not in methods]
    if missing:
        print(f"skipping {', '.join(missing)}: not importable by {args.peers_python} (pass "
              f"--peers-python or $ANOMALY_PEERS_PYTHON, an interpreter with pyod==3.6.7, "
              f"scikit-learn and torch)", file=sys.stderr)
    sklearn = found["sklearn"]
    contenders = [*TFVAE_ROWS[:2 if args.importance_samples else 1],
                  *(peers.METHODS[m] for m in methods)]
    runs, checks = [], {"split_replica_identical": 0, "splits": 0,
                        "own_metrics_max_difference": None}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            data = args.data_dir / f"{name}.npz"
            X, y = peers.load(data)
            for seed in args.seeds:
                split = Path(tmp) / f"{name}_{seed}_split.npz"
                train, test = stratified_split(y, seed)
                train = peers.cut(train, args.max_rows)
                if sklearn:  # scikit-learn's own split; the replica checked against it
                    run_child([HERE / "anomaly_peers.py", data, seed, "split", "--out", split,
                               "--max-rows", args.max_rows], python=args.peers_python)
                    theirs = peers.read_split(split)
                    checks["splits"] += 1
                    checks["split_replica_identical"] += all(
                        np.array_equal(a, b) for a, b in zip((train, test), theirs))
                    train, test = theirs
                else:
                    np.savez(split, train=train, test=test)
                epochs = args.epochs or default_epochs(len(train))
                scores_file = Path(tmp) / f"{name}_{seed}_scores.npz"
                tfvae_run = run_child([HERE / "anomaly.py", "--child", data, split, seed, epochs,
                                       args.importance_samples, args.gaussian_scale,
                                       scores_file])
                with np.load(scores_file) as saved:
                    scores = {k: saved[k] for k in saved.files}
                seconds = {"tfvae_elbo": tfvae_run["fit_seconds"] + tfvae_run["elbo_seconds"]}
                if args.importance_samples:
                    seconds["tfvae_importance"] = (tfvae_run["fit_seconds"]
                                                   + tfvae_run["importance_seconds"])
                for method in methods:
                    peer_file = Path(tmp) / f"{name}_{seed}_{method}.npz"
                    result = run_child([HERE / "anomaly_peers.py", data, seed, method, "--split",
                                        split, "--scores", peer_file], python=args.peers_python)
                    with np.load(peer_file) as saved:
                        scores[peers.METHODS[method]] = saved["scores"]
                    seconds[peers.METHODS[method]] = result["seconds"]
                # Every contender's metrics by one code: sklearn's where the peers have it.
                ours = {k: own_metrics(y[test], s) for k, s in scores.items()}
                if sklearn:
                    all_scores = Path(tmp) / f"{name}_{seed}_all.npz"
                    np.savez(all_scores, y_test=y[test], **scores)
                    metrics = run_child([HERE / "anomaly_peers.py", "metrics", all_scores],
                                        python=args.peers_python)
                    difference = max(abs(metrics[k][m] - ours[k][m]) for k in ours
                                     for m in ours[k])
                    checks["own_metrics_max_difference"] = max(
                        difference, checks["own_metrics_max_difference"] or 0.0)
                else:
                    metrics = ours
                for contender in contenders:
                    runs.append({"dataset": name, "seed": seed, "contender": contender,
                                 **metrics[contender], "seconds": seconds[contender]})
                runs.append({"dataset": name, "seed": seed, "contender": "tfvae_fit",
                             "train_rows": len(train), "test_rows": len(test),
                             "test_anomalies": int(y[test].sum()), **tfvae_run})
                if not args.json:
                    print(f"{name} seed {seed}: " + ", ".join(
                        f"{c} {metrics[c]['roc_auc']:.3f}" for c in contenders), flush=True)
    report = {
        "machine": machine(),
        "command": shlex.join(["python", "benchmarks/anomaly.py",
                               *(sys.argv[1:] if argv is None else map(str, argv))]),
        "seconds": time.perf_counter() - started, "load_average_1min_at_start": load_at_start,
        "datasets": args.datasets,
        "seeds": args.seeds, "max_rows": args.max_rows, "skipped": missing,
        "metrics_by": "sklearn.metrics in " + args.peers_python if sklearn
        else "anomaly.py's own roc_auc and average_precision",
        "split_by": "sklearn train_test_split in " + args.peers_python if sklearn
        else "anomaly.py's stratified_split (a replica of sklearn's train_test_split)",
        "checks": checks,
        "tfvae_settings": {"likelihood": "normal", "gaussian_scale": args.gaussian_scale,
                           "latent_dim": "min(8, max(2, D // 2))", "hidden": HIDDEN,
                           "depth": DEPTH, "activation": "relu", "batch_size": BATCH,
                           "optimizer": f"adam {LEARNING_RATE}",
                           "epochs": args.epochs or f"min({MAX_EPOCHS}, {MAX_STEPS} // steps "
                                                    f"per epoch)",
                           "importance_samples": args.importance_samples},
        "contenders": contenders, "runs": runs,
    }
    report["summary"] = summary(runs, args.datasets, contenders)
    write_results("anomaly", args.out, **{k: v for k, v in report.items() if k != "machine"})
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report, args.datasets, contenders)


def summary(runs, datasets, contenders):
    """{dataset: {contender: means and sds over the seeds}} and "mean": the means of those
    means over the datasets."""
    table = {}
    for name in datasets:
        table[name] = {}
        for contender in contenders:
            mine = [r for r in runs if r["dataset"] == name and r["contender"] == contender]
            row = {}
            for field in ("roc_auc", "average_precision", "seconds"):
                row[field], row[field + "_sd"] = summarize([r[field] for r in mine])
            table[name][contender] = row
    table["mean"] = {c: {field: statistics.fmean(table[d][c][field] for d in datasets)
                         for field in ("roc_auc", "average_precision", "seconds")}
                     for c in contenders}
    return table


def print_report(report, datasets, contenders):
    m, s = report["machine"], report["summary"]
    print(f"\n{m['cpu']} ({m['cores']} cores, load {report['load_average_1min_at_start']} at "
          f"the start, {m['load_average_1min']} at the end); "
          f"{report['command']}; seeds {report['seeds']}")
    print(f"split: {report['split_by']}; metrics: {report['metrics_by']}")
    if report["skipped"]:
        print(f"skipped: {', '.join(report['skipped'])}")
    checks = report["checks"]
    if checks["splits"]:
        print(f"checks: the replica split is sklearn's on {checks['split_replica_identical']} "
              f"of {checks['splits']} splits; own metrics differ from sklearn's by at most "
              f"{checks['own_metrics_max_difference']:.1e}")
    fits = {r["dataset"]: r for r in report["runs"] if r["contender"] == "tfvae_fit"}
    for name in datasets:
        fit = fits[name]
        print(f"\n{name}: {fit['train_rows']:,} training rows, {fit['test_rows']:,} test rows "
              f"({fit['test_anomalies']} anomalies); tfvae {fit['epochs']} epochs "
              f"({fit['steps']:,} steps)")
        print_table([{"contender": c, **s[name][c]} for c in contenders],
                    ["contender", "roc_auc", "roc_auc_sd", "average_precision",
                     "average_precision_sd", "seconds"])
    for field in ("roc_auc", "average_precision", "seconds"):
        print(f"\n{field}, mean over seeds; last column the mean over datasets:")
        print_table([{"contender": c, **{d: s[d][c][field] for d in datasets},
                      "mean": s["mean"][c][field]} for c in contenders],
                    ["contender", *datasets, "mean"])
    peers_only = [c for c in contenders if c not in TFVAE_ROWS]
    if peers_only:
        best = max(peers_only, key=lambda c: s["mean"][c]["roc_auc"])
        print()
        for c in (c for c in contenders if c in TFVAE_ROWS):
            lead = {f: s["mean"][c][f] - s["mean"][best][f]
                    for f in ("roc_auc", "average_precision")}
            print(f"{c} minus the best peer by mean ROC-AUC ({best}): ROC-AUC "
                  f"{lead['roc_auc']:+.3f}, AP {lead['average_precision']:+.3f}")
    print(f"\ntotal {report['seconds']:,.0f} s")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:])
    else:
        main()
