"""The VampPrior's KL warm-up found by ``tfvae tune`` against the likelihood table's hand-picked
one (``likelihood_table.WARMUP_EPOCHS``, 20 epochs; ``docs/likelihood.md``).

The table's VampPrior model (784-200-200-50 tanh, K = 500 pseudo-inputs, Adam 1e-3, batch 100,
dynamically binarized MNIST, seed 0) is trained for ``--epochs`` epochs on the first
``--train-examples`` training images, its test bound taken each epoch on the first
``--test-examples`` test images. The search (``tfvae.tune``, TPE, median pruning after 3
trials) tries ``--trials`` warm-ups from 0 to ``--max-warmup`` epochs and keeps each trial's
best epoch; the hand-picked warm-up is trained the same way beside it. Both models' best
checkpoints are then scored on ``--held-out`` test images the search never saw (images 5,000
on, binarized once with the table's seed) by the importance-sampled log p(x) with ``--k``
samples, so the search's pick is not judged on the images it was picked by.

    python benchmarks/tune_vampprior.py [--epochs 3] [--train-examples 60000] [--trials 10]

A warm-up is counted in epochs of the training set, so fewer training images make the same
warm-up fewer steps: keep all 60,000 (on 10,000, a 17-epoch warm-up collapsed as the table's
2-epoch one does on 60,000).

Each model is a run directory under ``--runs`` (the search in ``search/``, which a rerun
resumes); the figures go to ``benchmarks/results/tune_vampprior.json`` (or ``--out``).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from likelihood_table import MODELS, TEST_SEED, WARMUP_EPOCHS  # noqa: E402

HELD_OUT_FROM = 5000  # the test images from here on are not the search's


def settings(args):
    """The fixed settings of every run: the table's VampPrior row less its warm-up."""
    model = {k: v for k, v in MODELS["vamp"][1].items() if k != "kl_warmup_epochs"}
    return {**model, "name": "mnist", "binarize": "dynamic", "epochs": args.epochs,
            "train_examples": args.train_examples, "test_examples": args.test_examples,
            "batch_size": 100, "optimizer": "adam", "learning_rate": 1e-3, "seed": 0}


def held_out_nll(run_dir, args):
    """-log p(x) of the best checkpoint on the held-out images: mean and standard error."""
    from tfvae import log_likelihood
    from tfvae.data import binarize, load_dataset
    from tfvae.runs import RunDirectory

    x = load_dataset("mnist", binarize="none").x_test[HELD_OUT_FROM:][:args.held_out]
    model = RunDirectory(run_dir).load_model("best")
    ll = log_likelihood(model, binarize(x, TEST_SEED), args.k, batch_size=20, seed=0)
    return {"nll": round(-ll.mean, 2), "nll_stderr": round(ll.stderr, 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-examples", type=int, default=60000)
    parser.add_argument("--test-examples", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--max-warmup", type=int, default=30)
    parser.add_argument("--held-out", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--runs", type=Path, default=common.ROOT / "runs" / "tune_vampprior")
    common.add_out(parser, "tune_vampprior.json")
    args = parser.parse_args(argv)

    from tfvae import tune
    from tfvae.runs import RunDirectory
    from tfvae.training.pipeline import train

    fixed = settings(args)
    space = {"params": {"kl_warmup_epochs": {"low": 0, "high": args.max_warmup}},
             "fixed": fixed, "pruning": {"startup_trials": 3, "warmup_epochs": 1}}
    start = time.perf_counter()
    found = tune(args.runs / "search", space, trials=args.trials)
    search_minutes = (time.perf_counter() - start) / 60
    hand = args.runs / "hand_picked"
    if not (RunDirectory(hand).state_path.is_file()
            and RunDirectory(hand).read_state().get("status") == "finished"):
        from tfvae.options import train_arguments

        train(hand, **train_arguments({**fixed, "kl_warmup_epochs": WARMUP_EPOCHS}),
              overwrite=RunDirectory(hand).is_run(), verbose=0)
    rows = []
    for name, warmup, run_dir in (("search's best", found.params["kl_warmup_epochs"],
                                   found.run_dir),
                                  ("hand-picked", WARMUP_EPOCHS, hand)):
        state = RunDirectory(run_dir).read_state()
        rows.append({"run": name, "kl_warmup_epochs": warmup,
                     "best_test_elbo": round(state["best_test_elbo"], 2),
                     **held_out_nll(run_dir, args)})
    machine = common.machine()
    print(f"processor: {machine['cpu']}, {machine['cores']} cores; search of {args.trials} "
          f"trials: {search_minutes:.1f} min")
    common.print_table([{**r, **{k: f"{r[k]:.2f}" for k in ("best_test_elbo", "nll", "nll_stderr")}}
                        for r in rows], ["run", "kl_warmup_epochs", "best_test_elbo", "nll",
                                         "nll_stderr"])
    trials = [{k: r[k] for k in ("trial", "state", "objective", "epochs", "kl_warmup_epochs")}
              for r in _trial_rows(found)]
    common.write_results("tune_vampprior", args.out, settings=fixed, trials_wanted=args.trials,
                         k=args.k, held_out=args.held_out, search_minutes=search_minutes,
                         runs=rows, trials=trials)
    return 0


def _trial_rows(found):
    from tfvae.training.search import read_space, trial_rows

    return trial_rows(found.study, read_space(found.table.parent / "space.json"))


if __name__ == "__main__":
    sys.exit(main())
