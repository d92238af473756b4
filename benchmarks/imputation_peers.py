"""The peers of ``imputation.py``, run by an interpreter of their own (never tfvae's): mean
imputation, scikit-learn's KNNImputer and IterativeImputer on one holed table.

    PYTHON benchmarks/imputation_peers.py HOLED.npz {mean,knn,iterative} SEED --out FILLED.npz

HOLED.npz holds ``x``, a standardized table [N, D] with NaN where values were removed. The
method fills them (scikit-learn's default settings, IterativeImputer seeded by SEED) and writes
the completed table as ``x`` to FILLED.npz; it prints one JSON line with the ``seconds`` the
imputation took (not the imports).

This file imports only numpy at its top: ``mean`` needs nothing else, so that it runs in any
interpreter, and ``imputation.py`` reads the holed tables with the same function.
"""

import argparse
import json
import sys
import time

import numpy as np

METHODS = {"mean": "mean", "knn": "KNNImputer", "iterative": "IterativeImputer"}
# The modules each method needs in this interpreter.
NEEDS = {"mean": (), "knn": ("sklearn",), "iterative": ("sklearn",)}


def read(path):
    with np.load(path) as data:
        return data["x"].astype(np.float64)


def mean_imputed(x):
    """Each NaN replaced by its column's mean over the observed values."""
    means = np.nanmean(x, axis=0)
    return np.where(np.isnan(x), means, x)


def imputer(method, seed):
    if method == "knn":
        from sklearn.impute import KNNImputer

        return KNNImputer()
    import importlib

    # IterativeImputer is experimental: importing this module is what makes it importable.
    importlib.import_module("sklearn.experimental.enable_iterative_imputer")
    from sklearn.impute import IterativeImputer

    return IterativeImputer(random_state=seed)


def run(method, x, seed):
    """The completed table and the seconds it took."""
    model = None if method == "mean" else imputer(method, seed)
    start = time.perf_counter()
    filled = mean_imputed(x) if model is None else model.fit_transform(x)
    return np.asarray(filled, np.float64), time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("holed")
    parser.add_argument("method", choices=list(METHODS))
    parser.add_argument("seed", type=int)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    x = read(args.holed)
    filled, seconds = run(args.method, x, args.seed)
    np.savez(args.out, x=filled)
    print(json.dumps({"method": METHODS[args.method], "seconds": seconds}))


if __name__ == "__main__":
    main()
