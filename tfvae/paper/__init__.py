"""Reproduce the paper's experiments: Figure 2, Figure 3 and the manifolds of Figure 4.

An experiment is a list of runs (``budgets.RunSpec``): one model (``aevb``, ``wake_sleep`` or
``mcem``) on one dataset, trained for a number of *training samples evaluated* (the x-axis of
the paper's figures) and evaluated at points spaced evenly on a log scale. A training sample is
evaluated each time the model takes a training example through a forward and backward pass:
once per example and training step for AEVB and wake-sleep (whose sleep phase works on
dreams), and for MCEM once per gradient of its HMC transition and once per weight update
(``budgets.samples_per_step``). The paper's setup (section 5 and appendix E) is followed throughout:

- one hidden layer of tanh units; every parameter initialized from N(0, 0.01), read in the
  paper's own notation N(mean, variance): a standard deviation of 0.1;
- Adagrad, its global step size chosen from {0.01, 0.02, 0.1} by the training performance over
  the second half of ``pilot_samples`` (the pilot of the chosen step size counts toward the run;
  the others are dropped); minibatches of 100, L = 1;
- a prior N(0, I) on the parameters: MAP adds ||theta||^2 / 2 per N training examples, i.e. a
  weight decay of 1/N per example.

The package: ``budgets`` (the experiments as data), ``loop`` (one run, resumable), ``report``
(CSV and ``results.md``), ``figures`` (the PNGs). :func:`reproduce` runs an experiment into
``OUT``: each run in ``OUT/runs/<experiment>/<run>/``, then ``OUT/<experiment>.csv``, the figures
and ``OUT/results.md``. A killed reproduction picks up where it stopped when the same command is
run again.
"""


import sys
import time
from pathlib import Path

from tfvae.checks import check_choice, check_seed
from tfvae.errors import InputError, arg
from tfvae.interruption import Interrupted
from tfvae.options import EXPERIMENTS
from tfvae.paper.budgets import BUDGETS, Budget, RunSpec, experiment_runs
from tfvae.paper.loop import Run
from tfvae.paper.report import write_outputs, write_results
from tfvae.storage import LOCK_FILE, exclusive_writer, read_json, write_json

__all__ = ["BUDGETS", "Budget", "RunSpec", "experiment_runs", "reproduce"]


def check_out_dir(out_dir, budget, seed):
    """``OUT/reproduce.json`` records the budget and seed; a resumed OUT must match them."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("out_dir", "a directory", f"the file {str(out_dir)!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / "reproduce.json"
    settings = {"budget": budget.name, "seed": seed}
    if marker.is_file():
        previous = read_json(marker)
        if previous != settings:
            raise InputError("out_dir", "a new directory, or one made with "
                             f"{arg('budget', previous['budget'])} {arg('seed', previous['seed'])}",
                             f"{str(out_dir)!r} with {arg('budget', budget.name)} "
                             f"{arg('seed', seed)}")
    else:
        if any(p.name not in ("reproduce.json", LOCK_FILE) for p in out_dir.iterdir()):
            raise InputError("out_dir", "a new or empty directory (or one made by tfvae reproduce)",
                             f"{str(out_dir)!r}, which holds other files")
        write_json(marker, settings)
    return out_dir


def reproduce(experiment, budget="smoke", out_dir="reproduction", seed=0, log=None):
    """Run ``experiment`` ("fig2", "fig3", "manifold" or "all") under ``budget`` into ``out_dir``.

    ``budget`` is a name from :data:`BUDGETS` or a :class:`Budget`. Writes the figures, one CSV of
    curves per experiment and ``results.md``; returns the paths written.
    """
    if isinstance(budget, str):
        budget = BUDGETS[check_choice("budget", budget, tuple(BUDGETS))]
    experiments = EXPERIMENTS if experiment == "all" else (experiment,)
    for name in experiments:
        check_choice("EXPERIMENT", name, EXPERIMENTS + ("all",))
    seed = check_seed("seed", seed)
    log = log or (lambda message: print(f"tfvae reproduce: {message}", file=sys.stderr,
                                        flush=True))
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise InputError("out_dir", "a directory", f"the file {str(out_dir)!r}")
    with exclusive_writer(out_dir, argument="out_dir", what="reproduction directory"):
        out_dir = check_out_dir(out_dir, budget, seed)
        started = time.perf_counter()
        written = []
        try:
            for name in experiments:
                specs = experiment_runs(name, budget)
                states = []
                for i, spec in enumerate(specs):
                    log(f"[{name} {i + 1}/{len(specs)}] {spec.name}")
                    states.append(Run(spec, budget, out_dir, seed, log).execute())
                written += write_outputs(name, specs, states, budget, out_dir, seed)
            written.append(write_results(out_dir, budget))
        except Interrupted as stop:
            # Each run's checkpoint and state.json are written as a pair: nothing is lost.
            raise Interrupted(stop.signum, "what was computed is kept; run the same command "
                              "again to continue") from None
    log(f"done in {time.perf_counter() - started:.0f} s; results in {out_dir / 'results.md'}")
    return written
