"""The IWAE paper's learning-rate schedule against a constant rate, and what early stopping saves
on a run that overfits.

**Schedules.** The likelihood table's one-layer VAE (``likelihood_table.py``'s "VAE, one layer,
k=1": 784-200-200-50 tanh, Adam 1e-3, batch 100, dynamically binarized MNIST, seed 0) trained
for the same ``--epochs`` (121: the IWAE schedule's first five stages, 1 + 3 + 9 + 27 + 81
epochs) with each of ``--schedules``:

- ``constant``: 1e-3 throughout;
- ``iwae``: ``learning_rate_schedule="iwae"`` (``tfvae/training/schedules.py``), the paper's
  stages at the paper's epochs (the rate falls at epochs 1, 4, 13, 40, ...), so a short run
  sees only its first stages;
- ``iwae-stretched``: the paper's eight stages with their lengths (3^i of 3,280 epochs) scaled
  to the run's steps, so its last two thirds are at 1e-4, as the paper's are (a ``keras.optimizers.schedules.PiecewiseConstantDecay`` given to ``train`` in an Adam
  optimizer object).

Each is scored, as the likelihood table scores it, by the importance-sampled log p(x)
(``tfvae.log_likelihood``, ``--k`` samples) on the first ``--test-examples`` test images binarized
once with the table's seed; the per-epoch test bound of metrics.csv is on the same number of test
images (binarized by the run's seed).

**Early stopping.** A run that overfits: ``--es-train-examples`` (1,000) MNIST training images,
784-500-20 tanh, Adam 1e-3, batch 20 (50 steps an epoch; at batch 100 the test bound was still
rising after 150 epochs), dynamic binarization, seed 0, for ``--es-epochs`` without early
stopping and with ``early_stopping_patience=--patience``. The second stops where its test bound
has not improved for that many epochs and returns the best epoch's model; its test ELBO,
evaluated afresh (the mean over ``--eval-draws`` draws of z, as the test bound is
stochastic), is set beside the best epoch's metrics.csv figure and the full run's last epoch.
The test bound per epoch of both runs, the stop marked, is drawn to ``--figure``.

    python benchmarks/training_schedules.py [--parts schedules early-stopping] [--epochs 121]
        [--train-examples 60000] [--schedules constant iwae iwae-stretched]
        [--test-examples 1000] [--k 1000] [--es-epochs 300] [--patience 20]
        [--es-train-examples 1000] [--es-test-examples 10000] [--eval-draws 10]
        [--figure docs/figures/early_stopping.png] [--out DIR]

Results go to ``benchmarks/results/training_schedules.{json,txt}`` (``--out DIR``: there).
Each run trains in its own process (``common.run_child``).
"""

import argparse
import contextlib
import io
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, add_out, machine, print_table, run_child, write_results
from likelihood_table import ONE_LAYER, TEST_SEED

SCHEDULE_RUN = {"data_config": {"name": "mnist", "binarize": "dynamic"}, "batch_size": 100,
                "seed": 0}
SCHEDULES = ("constant", "iwae", "iwae-stretched")
LEARNING_RATE = 1e-3
PAPER_STAGES = 8  # the IWAE paper's i = 0..7, 3^i epochs each
EARLY_STOPPING_RUN = {"model_config": {"hidden": 500, "latent_dim": 20, "activation": "tanh"},
                      "data_config": {"name": "mnist", "binarize": "dynamic"}, "batch_size": 20,
                      "optimizer": "adam", "learning_rate": LEARNING_RATE, "seed": 0}


def stretched_iwae_rate(total_steps):
    """The IWAE paper's rates, 1e-3 * 10^(-i/7), over stages whose lengths keep the paper's
    shares (3^i of 3,280 epochs) of ``total_steps``."""
    import keras

    lengths = [3 ** i for i in range(PAPER_STAGES)]
    boundaries, start = [], 0
    for length in lengths[:-1]:
        start += length
        boundaries.append(max(1, round(total_steps * start / sum(lengths))))
    # PiecewiseConstantDecay wants increasing boundaries: a tiny run merges its first stages.
    for i in range(1, len(boundaries)):
        boundaries[i] = max(boundaries[i], boundaries[i - 1] + 1)
    values = [LEARNING_RATE * 10 ** (-i / 7) for i in range(PAPER_STAGES)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def rate_at(optimizer, step):
    """The optimizer's learning rate at ``step`` (a float rate or a schedule)."""
    rate = optimizer.learning_rate
    schedule = getattr(optimizer, "_learning_rate", None)
    if callable(schedule):
        return float(schedule(step))
    return float(rate.numpy() if hasattr(rate, "numpy") else rate)


def schedule_child(schedule, epochs, train_examples, test_examples, k):
    """Train the one-layer VAE with ``schedule`` and score it; print a JSON line."""
    import keras

    from tfvae import log_likelihood
    from tfvae.data import binarize, load_dataset
    from tfvae.training.pipeline import train

    epochs, train_examples, test_examples = int(epochs), int(train_examples), int(test_examples)
    data_config = {**SCHEDULE_RUN["data_config"], "train_examples": train_examples,
                   "test_examples": test_examples}
    steps_per_epoch = math.ceil(train_examples / SCHEDULE_RUN["batch_size"])
    if schedule == "iwae-stretched":
        controls = {"optimizer": keras.optimizers.Adam(
            learning_rate=stretched_iwae_rate(epochs * steps_per_epoch))}
    else:
        controls = {"optimizer": "adam", "learning_rate": LEARNING_RATE,
                    "learning_rate_schedule": schedule}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = train(Path(tmp) / "run", model_config=dict(ONE_LAYER), data_config=data_config,
                       epochs=epochs, batch_size=SCHEDULE_RUN["batch_size"],
                       seed=SCHEDULE_RUN["seed"], verbose=0, **controls)
        train_wall = time.perf_counter() - start
        rows = result.run.read_metrics()
    model = result.model
    last_step = epochs * steps_per_epoch - 1
    x_test = binarize(load_dataset("mnist", binarize="none").x_test[:test_examples], TEST_SEED)
    start = time.perf_counter()
    ll = log_likelihood(model, x_test, int(k), batch_size=20, seed=0)
    print(json.dumps({
        "schedule": schedule, "epochs": len(rows), "xla": bool(model.jit_compile),
        "first_rate": rate_at(model.optimizer, 0), "last_rate": rate_at(model.optimizer, last_step),
        "test_elbo": rows[-1]["test_elbo"], "best_test_elbo": max(r["test_elbo"] for r in rows),
        "train_elbo": rows[-1]["train_elbo"],
        "test_log_px": ll.mean, "test_log_px_stderr": ll.stderr,
        "train_seconds": sum(r["seconds"] for r in rows), "train_wall_seconds": train_wall,
        "log_px_seconds": time.perf_counter() - start,
        "test_elbo_per_epoch": [r["test_elbo"] for r in rows]}))


def evaluated_elbo(model, x, draws, batch_size):
    """The test ELBO of ``model`` on ``x``, its mean and standard error over ``draws`` draws of
    z (seeds 0..draws-1): one draw is what an epoch's test pass measures."""
    import numpy as np

    from tfvae.evaluation.diagnostics import evaluate_elbo

    values = np.array([evaluate_elbo(model, x, batch_size=batch_size, seed=s)["elbo"]
                       for s in range(draws)])
    stderr = float(values.std(ddof=1) / np.sqrt(draws)) if draws > 1 else float("nan")
    return float(values.mean()), stderr


def early_stopping_child(epochs, patience, train_examples, test_examples, draws):
    """Train the overfitting run (``patience`` 0: without early stopping); print a JSON line
    with its curve, where it stopped, and its returned model's test ELBO evaluated afresh."""
    import numpy as np

    from tfvae.data import load_dataset
    from tfvae.training.pipeline import train

    patience = int(patience) or None
    data_config = {**EARLY_STOPPING_RUN["data_config"], "train_examples": int(train_examples),
                   "test_examples": int(test_examples)}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = train(Path(tmp) / "run", **{**EARLY_STOPPING_RUN, "data_config": data_config},
                       epochs=int(epochs), early_stopping_patience=patience, verbose=0)
        wall = time.perf_counter() - start
        rows = result.run.read_metrics()
        state = result.run.read_state()
        best = result.run.load_model("best")
        same_as_best = all(np.array_equal(a, b) for a, b in
                           zip(result.model.get_weights(), best.get_weights()))
    # The test images the run's test pass saw: binarized once by the run's seed.
    x_test = load_dataset(**data_config, seed=EARLY_STOPPING_RUN["seed"]).x_test
    mean, stderr = evaluated_elbo(result.model, x_test, int(draws), batch_size=500)
    best_row = max(rows, key=lambda r: r["test_elbo"])  # the first of equals, as EarlyStop
    print(json.dumps({
        "patience": patience, "epochs": len(rows), "stopped_early": state.get("stopped_early"),
        "best_epoch": int(best_row["epoch"]), "best_test_elbo": best_row["test_elbo"],
        "last_test_elbo": rows[-1]["test_elbo"], "last_train_elbo": rows[-1]["train_elbo"],
        "returned_model_is_best_checkpoint": same_as_best,
        "returned_test_elbo": mean, "returned_test_elbo_stderr": stderr,
        "train_seconds": sum(r["seconds"] for r in rows), "wall_seconds": wall,
        "test_elbo_per_epoch": [r["test_elbo"] for r in rows],
        "train_elbo_per_epoch": [r["train_elbo"] for r in rows]}))


def draw(full, stopped, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    epochs = range(1, len(full["test_elbo_per_epoch"]) + 1)
    ax.plot(epochs, full["train_elbo_per_epoch"], color="0.6", lw=1,
            label="train ELBO, no early stopping")
    ax.plot(epochs, full["test_elbo_per_epoch"], color="C0", lw=1.5,
            label="test ELBO, no early stopping")
    ax.plot(range(1, stopped["epochs"] + 1), stopped["test_elbo_per_epoch"], color="C1", lw=1.5,
            ls="--", label=f"test ELBO, patience {stopped['patience']}")
    ax.axvline(stopped["epochs"], color="C1", lw=1, ls=":")
    ax.plot([stopped["best_epoch"]], [stopped["best_test_elbo"]], "o", color="C3",
            label=f"best epoch {stopped['best_epoch']}"
                  + (", the model returned" if stopped["stopped_early"] else ""))
    ax.annotate(f"stopped at epoch {stopped['epochs']}" if stopped["stopped_early"]
                else "ran to the end", (stopped["epochs"], 0.02), xycoords=("data", "axes fraction"), xytext=(-4, 0),
                textcoords="offset points", ha="right")
    # The first epochs' steep rise would flatten the rest: the axis starts at the 10th epoch's.
    curve = full["test_elbo_per_epoch"]
    ax.set_ylim(min(curve[min(9, len(curve) - 1):]) - 2,
                max(curve + full["train_elbo_per_epoch"]) + 2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("ELBO (nats per image)")
    ax.set_title("MNIST, 1,000 training images: early stopping")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _formatted(row, formats):
    """``row`` with the columns of ``formats`` (column -> format spec) as text, for the table."""
    return {**row, **{c: format(row[c], spec) for c, spec in formats.items()}}


def run_schedules(args, script):
    rows = []
    for schedule in args.schedules:
        row = run_child([script, "--child", "schedule", schedule, args.epochs,
                         args.train_examples, args.test_examples, args.k], timeout=None)
        rows.append(row)
        print(f"{schedule}: test ELBO {row['test_elbo']:.2f}, log p(x) "
              f"{row['test_log_px']:.2f} ± {row['test_log_px_stderr']:.2f}", flush=True)
    print(f"\nschedules: one-layer VAE (784-200-200-50 tanh), Adam, batch 100, {args.epochs} "
          f"epochs of {args.train_examples} MNIST images (dynamic binarization), seed 0; "
          f"log p(x) with k = {args.k} on {args.test_examples} test images")
    formats = {"first_rate": ".2e", "last_rate": ".2e", "test_elbo": ".2f", "test_log_px": ".2f",
               "test_log_px_stderr": ".2f", "train_seconds": ".0f", "train_wall_seconds": ".0f"}
    print_table([_formatted(r, formats) for r in rows], ["schedule", "epochs", *formats])
    return rows


def run_early_stopping(args, script):
    full, stopped = (run_child([script, "--child", "early", args.es_epochs, patience,
                                args.es_train_examples, args.es_test_examples,
                                args.eval_draws], timeout=None)
                     for patience in (0, args.patience))
    print(f"\nearly stopping: 784-500-20 tanh, Adam 1e-3, batch "
          f"{EARLY_STOPPING_RUN['batch_size']}, {args.es_train_examples} MNIST training images "
          f"(dynamic binarization), {args.es_test_examples} test images, {args.es_epochs} epochs "
          f"at most, seed 0")
    formats = {"best_test_elbo": ".2f", "last_test_elbo": ".2f", "returned_test_elbo": ".2f",
               "returned_test_elbo_stderr": ".2f", "train_seconds": ".1f", "wall_seconds": ".1f"}
    print_table([_formatted({"run": "no early stopping", **full}, formats),
                 _formatted({"run": f"patience {args.patience}", **stopped}, formats)],
                ["run", "epochs", "best_epoch", *formats])
    common = min(full["epochs"], stopped["epochs"])
    curves_differ = max((abs(a - b) for a, b in zip(full["test_elbo_per_epoch"][:common],
                                                    stopped["test_elbo_per_epoch"][:common])),
                        default=0.0)
    saved = {"epochs": full["epochs"] - stopped["epochs"],
             "wall_seconds": full["wall_seconds"] - stopped["wall_seconds"],
             "train_seconds": full["train_seconds"] - stopped["train_seconds"],
             "test_elbo_gain": stopped["returned_test_elbo"] - full["last_test_elbo"],
             "curves_max_difference": curves_differ}
    if not stopped["stopped_early"]:
        print(f"patience {args.patience} did not stop the run within {args.es_epochs} epochs")
    print(f"stopped at epoch {stopped['epochs']} (best epoch {stopped['best_epoch']}): "
          f"{saved['epochs']} epochs and {saved['wall_seconds']:.1f} s saved "
          f"({saved['train_seconds']:.1f} s of them in training steps); restored model's test "
          f"ELBO {stopped['returned_test_elbo']:.2f} ± {stopped['returned_test_elbo_stderr']:.2f} "
          f"(best epoch's {stopped['best_test_elbo']:.2f}; returned weights are best.keras's: "
          f"{stopped['returned_model_is_best_checkpoint']}) against the full run's last "
          f"{full['last_test_elbo']:.2f}; the two runs' test curves differ by at most "
          f"{curves_differ:.2g} nats over their common epochs")
    draw(full, stopped, args.figure)
    print(f"written: {args.figure}")
    return {"full": full, "stopped": stopped, "saved": saved}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=("schedules", "early-stopping"),
                        default=["schedules", "early-stopping"])
    parser.add_argument("--epochs", type=int, default=121, help="epochs of each schedule's run")
    parser.add_argument("--train-examples", type=int, default=60_000)
    parser.add_argument("--schedules", nargs="+", choices=SCHEDULES, default=list(SCHEDULES))
    parser.add_argument("--test-examples", type=int, default=1000)
    parser.add_argument("--k", type=int, default=1000, help="importance samples per image")
    parser.add_argument("--es-epochs", type=int, default=300)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--es-train-examples", type=int, default=1000)
    parser.add_argument("--es-test-examples", type=int, default=10_000)
    parser.add_argument("--eval-draws", type=int, default=10,
                        help="draws of z for the restored model's test ELBO")
    parser.add_argument("--figure", type=Path,
                        default=ROOT / "docs" / "figures" / "early_stopping.png")
    add_out(parser, "training_schedules.{json,txt}")
    args = parser.parse_args(argv)
    if min(args.epochs, args.es_epochs, args.patience, args.k, args.eval_draws) < 1:
        parser.error("--epochs, --es-epochs, --patience, --k and --eval-draws must be positive")
    out = io.StringIO()
    script = str(Path(__file__).resolve())
    results = {"settings": {k: str(v) if isinstance(v, Path) else v
                            for k, v in vars(args).items() if k != "out"}}
    # The printed report is also the .txt: tee stdout into it.
    with contextlib.redirect_stdout(Tee(sys.stdout, out)):
        m = machine()
        print(f"processor: {m['cpu']}, {m['cores']} cores, load {m['load_average_1min']}")
        if "schedules" in args.parts:
            results["schedules"] = run_schedules(args, script)
        if "early-stopping" in args.parts:
            results["early_stopping"] = run_early_stopping(args, script)
    write_results("training_schedules", out=args.out, **results)
    txt = Path(args.out or ROOT / "benchmarks" / "results") / "training_schedules.txt"
    txt.write_text(out.getvalue())
    print(f"written: {txt}")
    return 0


class Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        {"schedule": schedule_child, "early": early_stopping_child}[sys.argv[2]](*sys.argv[3:])
    else:
        sys.exit(main())
