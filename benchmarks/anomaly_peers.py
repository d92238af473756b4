"""The peers of ``anomaly.py``, run by an interpreter of their own (never tfvae's): scikit-learn's
IsolationForest, PyOD's ECOD and PyOD's VAE on one ADBench table and seed, and the split and the
metrics every contender of ``anomaly.py`` shares.

    PYTHON benchmarks/anomaly_peers.py DATA.npz SEED {iforest,ecod,pyod_vae}
                                       [--split SPLIT.npz] [--max-rows N] [--scores OUT.npz]
    PYTHON benchmarks/anomaly_peers.py DATA.npz SEED split --out SPLIT.npz [--max-rows N]
    PYTHON benchmarks/anomaly_peers.py metrics SCORES.npz

A method fits on the standardized training rows without their labels and scores the test rows
(higher = more anomalous); it prints one JSON line: ``roc_auc``, ``average_precision`` (by
``sklearn.metrics``) and ``seconds`` (standardizing, fitting and scoring; not the imports).
``--split`` reads the rows from an ``anomaly.py`` split file (``train``, ``test`` index arrays),
else the split is ADBench's, made here: ``train_test_split(X, y, test_size=0.3, stratify=y,
random_state=SEED)`` on the row indices, the training rows cut to the first ``--max-rows``.
``split`` writes that split; ``metrics`` prints sklearn's ROC-AUC and average precision of every
score array of SCORES.npz against its ``y_test``, so that every contender is scored by one code.

This file imports only numpy at its top: ``anomaly.py`` (tfvae's interpreter) reads tables and
standardizes with the same functions.
"""

import argparse
import json
import sys
import time

import numpy as np

TEST_SIZE = 0.3
METHODS = {"iforest": "IsolationForest", "ecod": "ECOD", "pyod_vae": "PyOD_VAE"}
# The modules each method needs in this interpreter.
NEEDS = {"iforest": ("sklearn",), "ecod": ("sklearn", "pyod"),
         "pyod_vae": ("sklearn", "pyod", "torch")}


def load(path):
    """X float64 [N, D] and y int [N] (1 = anomaly) of an ADBench .npz."""
    with np.load(path) as data:
        return data["X"].astype(np.float64), data["y"].astype(np.int64)


def sklearn_split(y, seed):
    """Row indices (train, test) of ``train_test_split(..., test_size=0.3, stratify=y,
    random_state=seed)``, in its order."""
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(y)), test_size=TEST_SIZE, stratify=y,
                            random_state=seed)


def cut(train, max_rows):
    """The first ``max_rows`` training rows (the split has shuffled them already)."""
    return train if not max_rows else train[:max_rows]


def standardized(X, train, test):
    """X[train] and X[test] standardized by the training rows' mean and standard deviation (a
    constant column left centred), float64."""
    mean = X[train].mean(axis=0)
    sd = X[train].std(axis=0)
    sd[sd == 0] = 1.0
    return (X[train] - mean) / sd, (X[test] - mean) / sd


def read_split(path):
    with np.load(path) as data:
        return data["train"], data["test"]


def sklearn_metrics(y, scores):
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {"roc_auc": float(roc_auc_score(y, scores)),
            "average_precision": float(average_precision_score(y, scores))}


def detector(method, seed):
    """A fresh detector of ``method``: the library's default settings, seeded where it takes
    a seed; PyOD's VAE quiet (``verbose=0``: no progress bars)."""
    if method == "iforest":
        from sklearn.ensemble import IsolationForest

        return IsolationForest(random_state=seed)
    if method == "ecod":
        from pyod.models.ecod import ECOD

        return ECOD()
    from pyod.models.vae import VAE

    return VAE(random_state=seed, verbose=0)


def run(method, X, train, test, seed):
    """Scores of the test rows (higher = more anomalous) and the seconds they took."""
    model = detector(method, seed)
    start = time.perf_counter()
    x_train, x_test = standardized(X, train, test)
    model.fit(x_train)
    # IsolationForest's score_samples is higher for normal rows; PyOD's decision_function
    # is higher for anomalies.
    scores = (-model.score_samples(x_test) if method == "iforest"
              else model.decision_function(x_test))
    return np.asarray(scores, np.float64), time.perf_counter() - start


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "metrics":
        with np.load(argv[1]) as data:
            y = data["y_test"]
            print(json.dumps({name: sklearn_metrics(y, data[name]) for name in data.files
                              if name != "y_test"}))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("seed", type=int)
    parser.add_argument("method", choices=[*METHODS, "split"])
    parser.add_argument("--split", help="an anomaly.py split file (train, test row indices)")
    parser.add_argument("--max-rows", type=int, default=0,
                        help="keep the first N training rows of the split (0: all)")
    parser.add_argument("--scores", help="write the test rows' scores and labels here (.npz)")
    parser.add_argument("--out", help="split: the file to write")
    args = parser.parse_args(argv)
    X, y = load(args.data)
    if args.split:
        train, test = read_split(args.split)
    else:
        train, test = sklearn_split(y, args.seed)
        train = cut(train, args.max_rows)
    if args.method == "split":
        np.savez(args.out, train=train, test=test)
        print(json.dumps({"train": len(train), "test": len(test)}))
        return
    scores, seconds = run(args.method, X, train, test, args.seed)
    if args.scores:
        np.savez(args.scores, scores=scores, y_test=y[test])
    print(json.dumps({"method": METHODS[args.method], **sklearn_metrics(y[test], scores),
                      "seconds": seconds}))


if __name__ == "__main__":
    main()
