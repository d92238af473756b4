"""Test log-likelihood of richer latent structures on dynamically binarized MNIST, beside the
published figures.

Each model trains on MNIST binarized afresh at every epoch (``tfvae train --binarize dynamic``)
and is scored by the importance-sampled log p(x) (``tfvae.log_likelihood``) with ``--k`` samples
(5000) on the first ``--test-examples`` test images (10,000), binarized once with the fixed seed
``TEST_SEED``; the table gives the negative log-likelihood (NLL, nats) and its standard error
over the images.

Budgets (``--budget``):

- ``cpu``: every model gets the same wall-clock training time, ``--minutes`` (15), each epoch's
  test bound and checkpoint included: training stops at the end of the last epoch that fits
  (at least one); the table reports the epochs reached and the minutes spent. Adam 1e-3, batch
  ``--batch-size`` (100).
- ``paper``: the IWAE paper's schedule (Burda et al., 2015, section 5): Adam with
  epsilon 1e-4 and learning rate 1e-3 * 10^(-i/7) for 3^i epochs, i = 0..7 (3,280 epochs), batch
  20.

Each model is a run directory ``OUT/BUDGET/MODEL`` (``tfvae.runs``): a rerun continues the runs
where they stopped (the time already spent counts toward the cpu budget) and reuses a finished
run's score. The table is printed and written to ``OUT/BUDGET/likelihood_table.{csv,md}``.

    python benchmarks/likelihood_table.py --budget cpu [--minutes 15] [--out runs/likelihood]
    python benchmarks/likelihood_table.py --budget cpu --minutes 0.2 --train-examples 1000 \\
        --test-examples 500 --k 100          # a quick check of the whole path

Published figures: Burda et al. (2015), Table 1 (dynamic binarization); the VampPrior's, from
Tomczak & Welling (2018) for their one-layer VAE with the VampPrior (K = 500 pseudo-inputs), is
on statically binarized MNIST with their own networks, so it is a reference, not a
like-for-like figure. No MLP figure was published for IAF with this architecture.
"""

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

from common import machine, print_table, run_child

TEST_SEED = 123
ONE_LAYER = {"latent_dim": 50, "hidden": 200, "depth": 2, "activation": "tanh"}
TWO_LAYERS = {"latent_dim": 100, "hidden": 200, "depth": 2, "activation": "tanh",
              "stochastic_layers": 2}  # z1 100 (200-200 tanh), z2 50 (100-100 tanh)
# The deep hierarchy (docs/resnet.md) at a size a CPU trains: 2 groups of 4 channels at each of
# 7x7, 14x14 and 28x28, gradients clipped as VDVAE's. No average of the weights: the cpu
# budget's few thousand steps are too few for one.
GROUPS = {"architecture": "resnet", "latent_groups": 6, "latent_dim": 4, "hidden": 32,
          "depth": 1, "activation": "gelu", "clip_norm": 200.0}
# KL warm-up (Sonderby et al., 2016), in epochs, for the structures whose plain ELBO falls into
# a state with few or no active units within the cpu budget: the VampPrior (its authors train
# with 100 epochs of warm-up) and the two-layer VAE.
WARMUP_EPOCHS = 20
# name -> (description, model settings, published NLL, its source); a "kl_warmup_epochs" entry
# in the settings is the run's warm-up.
MODELS = {
    "vae": ("VAE, one layer, k=1", {**ONE_LAYER}, 86.76, "Burda et al. 2015, Table 1"),
    "iwae50": ("IWAE, one layer, k=50", {**ONE_LAYER, "objective": "iwae", "num_samples": 50},
               84.78, "Burda et al. 2015, Table 1"),
    "iwae50_dreg": ("IWAE, one layer, k=50, DReG",
                    {**ONE_LAYER, "objective": "iwae", "num_samples": 50, "gradient": "dreg"},
                    84.32, "a TF2 reproduction of IWAE with DReG, not a paper table"),
    "vae_2l": ("VAE, two layers, k=1", {**TWO_LAYERS}, 85.33, "Burda et al. 2015, Table 1"),
    "vae_2l_warmup": (f"VAE, two layers, k=1, KL warm-up {WARMUP_EPOCHS} epochs",
                      {**TWO_LAYERS, "kl_warmup_epochs": WARMUP_EPOCHS}, 85.33,
                      "Burda et al. 2015, Table 1 (no warm-up)"),
    "iwae50_2l": ("IWAE, two layers, k=50",
                  {**TWO_LAYERS, "objective": "iwae", "num_samples": 50}, 82.90,
                  "Burda et al. 2015, Table 1"),
    "vamp": (f"VAE, VampPrior (K=500), one layer, KL warm-up {WARMUP_EPOCHS} epochs",
             {**ONE_LAYER, "prior": "vamp", "prior_components": 500,
              "kl_warmup_epochs": WARMUP_EPOCHS}, 85.57,
             "Tomczak & Welling 2018 (static binarization)"),
    "iaf": ("VAE, IAF (2 steps), one layer", {**ONE_LAYER, "posterior": "iaf", "flow_steps": 2},
            None, "none published"),
    "resnet_groups": ("ResNet VAE, 6 latent groups (hidden 32, depth 1)", {**GROUPS}, None,
                      "none at this size; the large models: 78.30 (an LVAE re-implementation, "
                      "addtt/ladder-vae-pytorch), 78.01 (NVAE, Vahdat & Kautz 2020)"),
}
# Training settings a model may carry beside its constructor's.
TRAINING_SETTINGS = ("kl_warmup_epochs", "clip_norm")
PAPER_STAGES = 8  # i = 0..7
COLUMNS = ["model", "epochs", "train_minutes", "nll", "nll_stderr", "published", "source"]


def paper_learning_rate(epoch):
    """The IWAE paper's rate at 0-based ``epoch``: 1e-3 * 10^(-i/7) in stage i (3^i epochs)."""
    start = 0
    for i in range(PAPER_STAGES):
        start += 3 ** i
        if epoch < start:
            return 1e-3 * 10 ** (-i / 7)
    return 1e-3 * 10 ** (-(PAPER_STAGES - 1) / 7)


def callbacks(budget, clock_path, seconds_left):
    """The budget's Keras callbacks: the paper's schedule or a wall-clock limit, and the clock
    that adds each epoch's wall-clock seconds (its test bound and checkpoint included) to
    ``clock_path``."""
    import keras

    class PaperSchedule(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.model.optimizer.epsilon = 1e-4  # read when the step is traced, after this

        def on_epoch_begin(self, epoch, logs=None):
            self.model.optimizer.learning_rate.assign(paper_learning_rate(epoch))

    class WallClock(keras.callbacks.Callback):
        """Keeps the run's training seconds; with the cpu budget, stops after the last epoch
        that fits in ``seconds_left`` (at least one)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            nonlocal seconds_left
            took = time.perf_counter() - self.start
            spent = _read_clock(clock_path)["seconds"] + took
            clock_path.write_text(json.dumps({"seconds": spent, "last_epoch": took}) + "\n")
            seconds_left -= took
            if budget == "cpu" and seconds_left < took:
                self.model.stop_training = True

    return [PaperSchedule(), WallClock()] if budget == "paper" else [WallClock()]


def _read_clock(path):
    return json.loads(path.read_text()) if path.is_file() else {"seconds": 0.0, "last_epoch": 0.0}


def child(name, run_dir, budget, minutes, batch_size, train_examples, test_examples, k):
    """Train (or continue) one model and score it; print a JSON row."""
    from tfvae import log_likelihood
    from tfvae.data import binarize, load_dataset
    from tfvae.runs import RunDirectory
    from tfvae.training.pipeline import train

    run_dir = Path(run_dir)
    run = RunDirectory(run_dir)
    started = (run_dir / "config.json").is_file()
    rows = run.read_metrics() if started else []
    clock_path = run_dir / "wall_clock.json"
    clock = _read_clock(clock_path)
    epochs = sum(3 ** i for i in range(PAPER_STAGES)) if budget == "paper" else 10 ** 6
    budget_seconds = float(minutes) * 60
    done = (len(rows) >= epochs if budget == "paper"
            else rows and clock["seconds"] + clock["last_epoch"] > budget_seconds)
    if not done:
        settings = dict(MODELS[name][1])
        training = {k: settings.pop(k, None) for k in TRAINING_SETTINGS}
        train(run_dir, model_config=None if started else settings,
              data_config=None if started else {
                  "name": "mnist", "binarize": "dynamic",
                  **({"train_examples": int(train_examples)} if int(train_examples) else {}),
                  # The per-epoch test bound on a part of the test set: the score is below.
                  "test_examples": min(int(test_examples), 1000)},
              epochs=epochs, batch_size=None if started else int(batch_size),
              optimizer=None if started else "adam",
              learning_rate=None if started else 1e-3, seed=None if started else 0,
              **({} if started else training), resume=started, verbose=0,
              callbacks=callbacks(budget, clock_path, budget_seconds - clock["seconds"]))
        rows = run.read_metrics()
    score_path = run_dir / "likelihood.json"
    settings = {"k": int(k), "test_examples": int(test_examples), "test_seed": TEST_SEED,
                "epochs": len(rows)}
    score = json.loads(score_path.read_text()) if score_path.is_file() else {}
    if score.get("settings") != settings:
        x_test = load_dataset("mnist", binarize="none").x_test[:int(test_examples)]
        x_test = binarize(x_test, TEST_SEED)
        model = run.load_model("model")
        ll = log_likelihood(model, x_test, int(k), batch_size=20, seed=0)
        score = {"settings": settings, "nll": -ll.mean, "nll_stderr": ll.stderr}
        score_path.write_text(json.dumps(score, indent=2) + "\n")
    print(json.dumps({"name": name, "epochs": len(rows),
                      "train_minutes": _read_clock(clock_path)["seconds"] / 60,
                      "nll": score["nll"], "nll_stderr": score["nll_stderr"]}))


def write_tables(rows, out, args):
    with open(out / "likelihood_table.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({c: r.get(c) for c in COLUMNS} for r in rows)
    head = (f"Budget `{args.budget}`"
            + (f" ({args.minutes:g} minutes per model)" if args.budget == "cpu" else "")
            + f"; NLL by importance sampling, k = {args.k}, on {args.test_examples} test images "
              f"binarized once (seed {TEST_SEED}); machine: {machine()['cpu']}.\n\n")
    lines = ["| model | epochs | train minutes | NLL (nats) | published | source |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        published = "" if r["published"] is None else f"{r['published']:.2f}"
        lines.append(f"| {r['model']} | {r['epochs']} | {r['train_minutes']:.1f} | "
                     f"{r['nll']:.2f} ± {r['nll_stderr']:.2f} | {published} | {r['source']} |")
    (out / "likelihood_table.md").write_text(head + "\n".join(lines) + "\n")


def _two_places(value):
    return "" if value is None else f"{value:.2f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=("cpu", "paper"), default="cpu")
    parser.add_argument("--minutes", type=float, default=15.0,
                        help="training minutes per model with --budget cpu (default: 15)")
    parser.add_argument("--batch-size", type=int,
                        help="default: 100 for cpu, 20 (the paper's) for paper")
    parser.add_argument("--train-examples", type=int, default=0,
                        help="train on the first N images (default: all 60,000)")
    parser.add_argument("--test-examples", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=5000, help="importance samples per image")
    parser.add_argument("--models", nargs="+", choices=tuple(MODELS), default=list(MODELS))
    parser.add_argument("--out", type=Path, default=Path("runs") / "likelihood",
                        help="run directories and tables go to OUT/BUDGET (default: "
                             "runs/likelihood)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.k < 1 or args.test_examples < 1:
        parser.error("--minutes, --k and --test-examples must be positive")
    batch_size = args.batch_size or (20 if args.budget == "paper" else 100)
    out = args.out / args.budget
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    script = str(Path(__file__).resolve())
    rows = []
    for name in args.models:
        description, _, published, source = MODELS[name]
        row = run_child([script, "--child", name, out / name, args.budget, args.minutes,
                         batch_size, args.train_examples, args.test_examples, args.k],
                        timeout=None)
        rows.append({"model": description, **row, "published": published, "source": source})
        print(f"{description}: NLL {row['nll']:.2f} ± {row['nll_stderr']:.2f} after "
              f"{row['epochs']} epochs", flush=True)
    print_table([{**r, **{c: _two_places(r[c]) for c in ("train_minutes", "nll", "nll_stderr",
                                                         "published")}} for r in rows], COLUMNS)
    write_tables(rows, out, args)
    print(f"written: {out / 'likelihood_table.csv'}, {out / 'likelihood_table.md'}")
    return 0 if all(math.isfinite(r["nll"]) for r in rows) else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:])
    else:
        sys.exit(main())
