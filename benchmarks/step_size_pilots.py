"""How soon the step-size pilots of `tfvae reproduce` can tell the candidates apart.

Trains one of the paper's runs with each Adagrad step size in {0.01, 0.02, 0.1} and prints the
mean training score (the bound; MCEM: log p(x, z)) over consecutive stretches of training
samples: the pilot that `tfvae reproduce --budget cpu` runs is 5x10^4 samples, scored on its
second half. Never asserted on: runs differ.

    python benchmarks/step_size_pilots.py [METHOD] [DATASET] [N_Z] [HIDDEN] [N_TRAIN] [SEED]
                                          [--stretches 10000,20000,50000,200000]
    python benchmarks/step_size_pilots.py aevb mnist 3 500 0 0     # Figure 2, MNIST N_z = 3
"""

import argparse
import sys

import keras

from tfvae.paper.budgets import BUDGETS, PAPER_LEARNING_RATES, RunSpec, samples_per_step
from tfvae.paper.loop import RunData, build_model, train_samples, training_score

STRETCHES = (10_000, 20_000, 50_000, 200_000)


def main(method="aevb", dataset="mnist", latent_dim=3, hidden=500, n_train=0, seed=0,
         stretches=STRETCHES):
    spec = RunSpec("fig2", dataset, method, int(latent_dim), int(hidden), int(n_train) or None,
                   stretches[-1])
    data = RunData(spec, BUDGETS["cpu"], seed=int(seed))
    unit = samples_per_step(method)
    print(f"{spec.name}, seed {seed}: mean training score over samples "
          + ", ".join(f"{a:,}-{b:,}" for a, b in zip((0, *stretches), stretches)))
    for lr in PAPER_LEARNING_RATES:
        model = build_model(spec, data.dataset, int(seed))
        model.compile(optimizer=keras.optimizers.Adagrad(lr))
        done, scores = 0, []
        for end in stretches:
            logs = train_samples(model, data, method, end - done, int(seed) + done // unit)
            done = end
            scores.append(training_score(method, logs))
        print(f"  step size {lr:>4}: " + ", ".join(f"{s:9.1f}" for s in scores), flush=True)


def parse(argv=None):
    """``main``'s arguments from the command line: its positionals, and ``--stretches`` (the
    ends of the stretches in training samples, comma-separated)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in (("method", "aevb"), ("dataset", "mnist"), ("latent_dim", 3),
                          ("hidden", 500), ("n_train", 0), ("seed", 0)):
        parser.add_argument(name, nargs="?", default=default)
    parser.add_argument("--stretches", default=",".join(map(str, STRETCHES)))
    args = parser.parse_args(argv)
    ends = tuple(int(end) for end in args.stretches.split(","))
    if list(ends) != sorted(set(ends)) or ends[0] <= 0:
        parser.error(f"--stretches: expected increasing positive sample counts, got "
                     f"{args.stretches!r}")
    return {**{k: v for k, v in vars(args).items() if k != "stretches"}, "stretches": ends}


if __name__ == "__main__":
    main(**parse(sys.argv[1:]))
