"""The reproduction's outputs: a CSV of every curve, the figures, and ``results.md``."""

import csv
from pathlib import Path

from tfvae.data import load_dataset
from tfvae.models import load_model
from tfvae.options import EXPERIMENTS
import tfvae.paper.figures as figures
from tfvae.paper.budgets import METHODS
from tfvae.storage import read_json, write_atomic, write_text

CSV_COLUMNS = [
    "experiment", "dataset", "method", "latent_dim", "hidden", "n_train", "learning_rate",
    "samples", "seconds", "train_bound", "test_bound", "train_log_px", "test_log_px",
    "hmc_acceptance",
]


def curve_rows(spec, state):
    """The CSV rows of one run's curve."""
    base = {"experiment": spec.experiment, "dataset": spec.dataset, "method": spec.method,
            "latent_dim": spec.latent_dim, "hidden": spec.hidden,
            "n_train": state.get("num_train"), "learning_rate": state.get("learning_rate")}
    return [{**base, **row} for row in state["rows"]]


def write_csv(path, rows):
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    return write_atomic(path, write)


def write_outputs(experiment, specs, states, budget, out_dir, seed):
    """The CSV of ``experiment``'s curves and its figures; returns the paths written."""
    rows = [row for spec, state in zip(specs, states) for row in curve_rows(spec, state)]
    written = [write_csv(out_dir / f"{experiment}.csv", rows)]
    if experiment == "fig2":
        written.append(figures.plot_fig2(rows, out_dir / "fig2.png"))
    elif experiment == "fig3":
        written.append(figures.plot_fig3(rows, out_dir / "fig3.png"))
    else:
        for spec, state in zip(specs, states):
            run_dir = Path(out_dir) / "runs" / spec.experiment / spec.name
            model = load_model(run_dir / state["checkpoint"])
            written.append(figures.plot_manifold(
                model, out_dir / f"fig4_manifold_{spec.dataset}.png", budget.manifold_grid))
            if spec.dataset == "mnist":
                ds = load_dataset("mnist", seed=seed)
                written.append(figures.plot_latent_means(
                    model, ds.x_test, ds.y_test, out_dir / "fig4_latent_mnist.png"))
    return written


def _fmt(value, digits=1):
    return "" if value is None else f"{value:.{digits}f}"


def _table_order(state):
    spec = state["spec"]
    return (spec["dataset"] != "mnist", spec["n_train"] or 0, spec["latent_dim"],
            METHODS.index(spec["method"]))


def write_results(out_dir, budget):
    """``results.md``: the last point of every run found in ``out_dir``, by experiment."""
    out_dir = Path(out_dir)
    lines = [f"# tfvae reproduce: results (budget `{budget.name}`)", "",
             "Last evaluation point of each run, per example in nats: bounds on the first "
             f"{budget.eval_examples} train and test examples, log p(x) (HMC, appendix D; IS: "
             f"importance sampling with {budget.importance_samples} samples) on the first "
             f"{budget.log_px_examples}. Step size: the Adagrad global step size chosen by the "
             "pilot (an arrow: lowered after a NaN).", ""]
    total = 0.0
    for experiment in EXPERIMENTS:
        states = sorted((read_json(p) for p in (out_dir / "runs" / experiment).glob("*/state.json")),
                        key=_table_order)
        if not states:
            continue
        total += sum(s["seconds"] for s in states)
        lines += [f"## {experiment}", ""]
        if experiment == "fig3":
            lines += ["| N_train | method | samples | train log p(x) | test log p(x) | "
                      "train IS | test IS | HMC accept | step size | status | seconds |",
                      "|---|---|---|---|---|---|---|---|---|---|---|"]
        else:
            lines += ["| dataset | N_z | hidden | method | samples | train bound | test bound | "
                      "step size | status | seconds |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
        for s in states:
            spec, last = s["spec"], (s["rows"][-1] if s["rows"] else {})
            changes = s.get("step_size_changes") or []
            step = " → ".join(str(c["from"]) for c in changes) + (" → " if changes else "")
            step += str(s["learning_rate"])
            if experiment == "fig3":
                imp = s.get("importance") or {}
                lines.append(
                    f"| {s['num_train']} | {spec['method']} | {last.get('samples', 0):,} | "
                    f"{_fmt(last.get('train_log_px'))} | {_fmt(last.get('test_log_px'))} | "
                    f"{_fmt(imp.get('train'))} | {_fmt(imp.get('test'))} | "
                    f"{_fmt(last.get('hmc_acceptance'), 2)} | {step} | "
                    f"{s['status']} | {s['seconds']:.0f} |")
            else:
                lines.append(
                    f"| {spec['dataset']} | {spec['latent_dim']} | {spec['hidden']} | "
                    f"{spec['method']} | {last.get('samples', 0):,} | "
                    f"{_fmt(last.get('train_bound'))} | {_fmt(last.get('test_bound'))} | "
                    f"{step} | {s['status']} | {s['seconds']:.0f} |")
        lines.append("")
    lines += [f"Training and evaluation time summed over runs: {total:.0f} s.", ""]
    path = out_dir / "results.md"
    return write_text(path, "\n".join(lines))
