"""MNIST with half the pixels of each training image missing, as in the MIWAE paper (Mattei &
Frellsen, 2019): the test bound on complete images of a VAE trained on the holed images
(``allow_missing``, the MIWAE bound) beside the same VAE trained on the complete images for the
same epochs, and a grid of imputations beside the originals.

    python benchmarks/missing_mnist.py [--train-examples 50000] [--epochs 30]
                                       [--test-examples 1000] [--is-samples 1000]
                                       [--impute-samples 1000] [--data-dir DIR] [--out DIR]
                                       [--figures DIR] [--json]

Data: the statically binarized MNIST of Larochelle & Murray (``binarized_mnist.npz`` of
``../shared/data``: 50,000 training, 10,000 test images), fixed values so that a removed pixel
is a removed value, not a removed draw. Each training image (the first ``--train-examples``)
loses half its pixels (392 of 784, drawn per image, seed 0) as NaN.

Both models: ``tfvae.VAE(image_shape=(784,), likelihood="bernoulli", latent_dim=20,
hidden=500, depth=1, activation="tanh", objective="iwae", num_samples=5, seed=0)`` (the
project's network defaults, IWAE with k = 5), Adam 1e-3, batch 100; the holed one with
``allow_missing=True``, so that its bound is MIWAE's. Each trains in a child process of its own
(``common.run_child``) and is scored on ``--test-examples`` complete test images (drawn by
seed 0, the split being ordered by digit): the
ELBO (``tfvae.score(method="elbo")``) and log p(x) by importance sampling with
``--is-samples`` draws (``tfvae.log_likelihood``).

Imputation, by the holed model, of test images that lose half their pixels the same way:
``tfvae.impute`` (``--impute-samples`` draws of z), scored on the missing pixels as the share
of them wrong when the imputation is rounded, and as the mean Bernoulli log-likelihood of the
true pixel under the imputed probability, beside the per-pixel mean of the observed training
pixels. The grid (``docs/figures/missing_mnist_imputations.png``; ``--figures DIR``: there
instead) shows 10 test images in columns, in rows: the originals, the holed images (missing
pixels grey), the single imputations (probabilities) and three multiple imputations (draws).

Prints a table of the two models and the imputation figures; writes
``benchmarks/results/missing_mnist.json`` (``--out DIR``: there instead).
"""

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import ROOT, add_out, machine, print_table, run_child, write_results

HERE = Path(__file__).resolve().parent
DATA_DIR = ROOT.parent / "shared" / "data"
SETTINGS = {"likelihood": "bernoulli", "latent_dim": 20, "hidden": 500, "depth": 1,
            "activation": "tanh", "objective": "iwae", "num_samples": 5}
BATCH, LEARNING_RATE = 100, 1e-3
GRID_COLUMNS, GRID_DRAWS = 10, 3


def images(data_dir, split, count):
    """The first ``count`` training images, or ``count`` test images drawn by seed 0: the test
    split is ordered by digit, so that its first images are all zeros."""
    with np.load(Path(data_dir) / "binarized_mnist.npz") as data:
        x = data[split]
    if split == "test":
        x = x[np.random.default_rng(0).permutation(len(x))[:count]]
    return x[:count].astype(np.float32)


def holed(x, seed):
    """``x`` [N, 784] with half the pixels of each image (drawn per image) set to NaN."""
    rng = np.random.default_rng(seed)
    missing = np.argsort(rng.random(x.shape), axis=1)[:, :x.shape[1] // 2]
    out = x.copy()
    np.put_along_axis(out, missing, np.nan, axis=1)
    return out


def bernoulli_log_likelihood(p, truth):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(np.mean(truth * np.log(p) + (1 - truth) * np.log(1 - p)))


# -- one model, in a child process ---------------------------------------------------------

def child(kind, data_dir, train_examples, epochs, test_examples, is_samples, impute_samples,
          out):
    """Train the ``kind`` ("holed" or "complete") model, score it on complete test images and
    (holed) impute holed test images into ``out`` (.npz); print a JSON line."""
    import keras

    import tfvae

    train_examples, epochs, test_examples = int(train_examples), int(epochs), int(test_examples)
    is_samples, impute_samples = int(is_samples), int(impute_samples)
    x_train = images(data_dir, "train", train_examples)
    if kind == "holed":
        x_train = holed(x_train, 0)
    x_test = images(data_dir, "test", test_examples)
    keras.utils.set_random_seed(0)  # the initial weights and fit's shuffling
    model = tfvae.VAE(image_shape=(784,), allow_missing=kind == "holed", seed=0, **SETTINGS)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE))
    start = time.perf_counter()
    history = model.fit(x_train, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    elbo = -tfvae.score(model, x_test, method="elbo")
    log_px = tfvae.log_likelihood(model, x_test, is_samples)
    result = {"kind": kind, "train_examples": train_examples, "epochs": epochs,
              "train_loss": [float(v) for v in history.history["loss"]],
              "fit_seconds": fit_seconds, "test_elbo": float(np.mean(elbo)),
              "test_elbo_stderr": float(np.std(elbo, ddof=1) / np.sqrt(len(elbo))),
              "test_log_px": log_px.mean, "test_log_px_stderr": log_px.stderr,
              "score_seconds": time.perf_counter() - start}
    if kind == "holed":
        x_holed = holed(x_test, 1)
        missing = np.isnan(x_holed)
        start = time.perf_counter()
        single = tfvae.impute(model, x_holed, num_samples=impute_samples, seed=0)
        result["impute_seconds"] = time.perf_counter() - start
        drawn = tfvae.impute(model, x_holed[:GRID_COLUMNS], num_samples=impute_samples,
                             draws=GRID_DRAWS, seed=0)
        pixel_mean = np.nanmean(x_train, axis=0)  # of the observed training pixels
        mean_filled = np.broadcast_to(pixel_mean, x_test.shape)
        result["imputation"] = {
            name: {"error_rate": float(np.mean((filled[missing] > 0.5) != x_test[missing])),
                   "log_likelihood": bernoulli_log_likelihood(filled[missing],
                                                              x_test[missing])}
            for name, filled in (("tfvae", single), ("pixel_mean", mean_filled))}
        np.savez(out, original=x_test[:GRID_COLUMNS], holed=x_holed[:GRID_COLUMNS],
                 single=single[:GRID_COLUMNS], drawn=drawn)
    print(json.dumps(result))


def grid_rows(saved):
    """The grid's images [rows * 10, 28, 28]: originals, holed (missing grey), single
    imputations, then each draw."""
    holed_grey = np.where(np.isnan(saved["holed"]), 0.5, saved["holed"])
    rows = [saved["original"], holed_grey, saved["single"], *saved["drawn"]]
    return np.concatenate(rows).reshape(-1, 28, 28)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-examples", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--test-examples", type=int, default=1000)
    parser.add_argument("--is-samples", type=int, default=1000,
                        help="draws of the importance-sampled log p(x) (default 1000)")
    parser.add_argument("--impute-samples", type=int, default=1000,
                        help="draws of z per image of tfvae.impute (default 1000)")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR,
                        help=f"the folder of binarized_mnist.npz (default {DATA_DIR})")
    add_out(parser, "missing_mnist.json")
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures",
                        help="write missing_mnist_imputations.png here (default docs/figures)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from tfvae.images import save_grid

    started = time.perf_counter()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        grid_file = Path(tmp) / "grid.npz"
        for kind in ("holed", "complete"):
            runs[kind] = run_child([HERE / "missing_mnist.py", "--child", kind, args.data_dir,
                                    args.train_examples, args.epochs, args.test_examples,
                                    args.is_samples, args.impute_samples, grid_file])
        args.figures.mkdir(parents=True, exist_ok=True)
        with np.load(grid_file) as saved:
            figure = save_grid(grid_rows(saved), args.figures / "missing_mnist_imputations.png",
                               columns=GRID_COLUMNS)
    report = {
        "machine": machine(),
        "command": shlex.join(["python", "benchmarks/missing_mnist.py",
                               *(sys.argv[1:] if argv is None else map(str, argv))]),
        "seconds": time.perf_counter() - started,
        "data": "binarized_mnist.npz (Larochelle & Murray's static binarization)",
        "settings": {**SETTINGS, "batch_size": BATCH, "optimizer": f"adam {LEARNING_RATE}",
                     "epochs": args.epochs, "train_examples": args.train_examples,
                     "missing_share_of_training_pixels": 0.5,
                     "test_examples": args.test_examples, "is_samples": args.is_samples,
                     "impute_samples": args.impute_samples},
        "runs": runs, "figure": str(figure),
    }
    write_results("missing_mnist", args.out, **{k: v for k, v in report.items()
                                                if k != "machine"})
    if args.json:
        print(json.dumps(report, indent=2))
        return
    m = report["machine"]
    print(f"\n{m['cpu']} ({m['cores']} cores, load {m['load_average_1min']}); "
          f"{report['command']}")
    print(f"\n{args.train_examples:,} training images, {args.epochs} epochs; bound on "
          f"{args.test_examples:,} complete test images (nats):")
    print_table([{"training_images": "half_missing" if kind == "holed" else "complete",
                  "elbo": r["test_elbo"], "elbo_se": r["test_elbo_stderr"],
                  "log_px": r["test_log_px"], "log_px_se": r["test_log_px_stderr"],
                  "fit_seconds": r["fit_seconds"]} for kind, r in runs.items()],
                ["training_images", "elbo", "elbo_se", "log_px", "log_px_se", "fit_seconds"])
    print(f"\nmissing pixels of {args.test_examples:,} test images with half their pixels "
          f"removed:")
    print_table([{"imputation": name, **values}
                 for name, values in runs["holed"]["imputation"].items()],
                ["imputation", "error_rate", "log_likelihood"])
    print(f"\nfigure: {figure}\ntotal {report['seconds']:,.0f} s")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:])
    else:
        main()
