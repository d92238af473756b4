"""Hyperparameter search over ``train``'s settings: :func:`tune` (``tfvae tune``), with Optuna.

Optuna, rather than KerasTuner, since its define-by-run trials wrap any callable: each trial is
an ordinary ``train`` run with its own run directory, resumable and exportable like any other.
Its SQLite storage keeps the study on disk, so a killed search resumes, and its pruners take a
metric of each epoch. KerasTuner drives ``model.fit`` itself and keeps its trials in a layout of
its own.

The search directory OUT holds:

- ``space.json``: the search space as checked (defaults filled in); a resume takes it from here;
- ``study.db``: the Optuna study (SQLite), named ``STUDY``;
- ``trials/NNNN/``: trial NNNN's run directory (``tfvae.runs``); a pruned trial's state.json
  has status "pruned" and the epoch it stopped at;
- ``trials.csv`` and ``trials.png``: a row per trial (number, state, objective, epochs,
  seconds, parameters), and the objective by trial (with the best so far) and against each
  parameter; both rewritten after each trial.

The space file's format is :mod:`tfvae.training.search_space`'s.
"""

import dataclasses
import math
import shutil
import time
from pathlib import Path

from tfvae import options, storage
from tfvae.errors import InputError, call
from tfvae.interruption import Interrupted, stop_on_signals
from tfvae.training.search_space import METRICS, check_space, read_space

STUDY = "tfvae"
SPACE_FILE = "space.json"
STUDY_FILE = "study.db"
TRIALS_DIR = "trials"
TABLE_FILE = "trials.csv"
FIGURE_FILE = "trials.png"
# The metrics an objective may take: metrics.csv's column -> the epoch's Keras log key.
TABLE_COLUMNS = ["trial", "state", "objective", "epochs", "seconds", "run_dir"]


@dataclasses.dataclass
class TuneResult:
    """What :func:`tune` leaves: the Optuna ``study``, the best trial's number, ``params``,
    objective ``value`` and run directory (None for all while no trial has completed), and the
    summary ``table`` and ``figure`` files."""

    study: object
    best_trial: int
    params: dict
    value: float
    run_dir: Path
    table: Path
    figure: Path


# -- the search -------------------------------------------------------------------------------

def tune(out_dir, space=None, *, trials, verbose=1):
    """Search ``train``'s settings over ``space`` into the search directory ``out_dir``, until it
    holds ``trials`` trials that completed or were pruned; returns a :class:`TuneResult`.

    ``space`` is a space file's path or its content as a dict (see the module's text). A search
    directory that exists resumes: ``space`` may then be left out, and if given must be the
    one it was started with. A trial that a kill left running counts as failed: its run
    directory is removed and its parameters are tried again first. ``verbose``: 1 prints a line
    per trial and the best at the end, 0 nothing.

    Raises ``Interrupted`` on SIGTERM or SIGINT (the finished trials are kept; the same call
    resumes), and lets a trial's other errors through (the trial is recorded as failed).
    """
    optuna = _optuna()
    from tfvae.checks import check_int

    out = storage.check_writable_dir(Path(out_dir), "out_dir")
    trials = check_int("trials", trials)
    if space is not None:
        space = check_space(space) if isinstance(space, dict) else read_space(space)
    with storage.exclusive_writer(out, argument="out_dir", what="search directory"), \
            stop_on_signals():
        space = _space_of(out, space)
        study = _open_study(optuna, out, space)
        _retry_stale(optuna, study, out)
        done = _finished(optuna, study)
        try:
            while len(done) < trials:
                trial = _run_trial(optuna, study, out, space, position=(len(done) + 1, trials),
                                   verbose=verbose)
                done = _finished(optuna, study)
                _write_summary(optuna, study, out, space)
                if verbose:
                    print(_trial_line(trial, space, (len(done), trials)), flush=True)
        except Interrupted as stop:
            raise Interrupted(stop.signum, f"{len(done)} finished trials are kept; continue "
                              "with: " + call("tune", out_dir=str(out), trials=trials)) from None
        _write_summary(optuna, study, out, space)
        result = _result(optuna, study, out)
        if verbose:
            metric = space["objective"]["metric"]
            print(f"tfvae tune: best: trial {result.best_trial}, {metric} {result.value:.2f} "
                  f"with {_params_text(result.params)}; {out / TABLE_FILE}, {out / FIGURE_FILE}"
                  if result.best_trial is not None else
                  f"tfvae tune: no trial completed; {out / TABLE_FILE}", flush=True)
        return result


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ModuleNotFoundError("tfvae tune needs Optuna: pip install 'tfvae[search]'",
                                  name="optuna") from None
    return optuna


def _space_of(out, given):
    """The search's space: a new search's, written to space.json, or the one it was started
    with."""
    stored = out / SPACE_FILE
    if stored.is_file():
        space = read_space(stored)
        if given is not None and given != space:
            differs = sorted(k for k in {*given, *space} if given.get(k) != space.get(k))
            raise InputError("space", f"the space the search in {str(out)!r} was started with "
                             f"(in {SPACE_FILE}), or none, to resume it",
                             f"one whose {', '.join(differs)} differ")
        return space
    if any(entry.name != storage.LOCK_FILE for entry in out.iterdir()):
        raise InputError("out_dir", "a new or empty directory, or a search directory of tfvae "
                         "tune to resume", f"{str(out)!r}, which holds other files")
    if given is None:
        raise InputError("space", "a search space to start a search", "none")
    storage.write_json(stored, given)
    return given


def _open_study(optuna, out, space):
    objective, pruning = space["objective"], space["pruning"]
    pruner = (optuna.pruners.NopPruner() if pruning is None else optuna.pruners.MedianPruner(
        n_startup_trials=pruning["startup_trials"],
        # Steps are epochs from 1; Optuna prunes from step == n_warmup_steps on.
        n_warmup_steps=pruning["warmup_epochs"] + 1))
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial is printed here
    return optuna.create_study(
        study_name=STUDY, storage=f"sqlite:///{(out / STUDY_FILE).resolve()}",
        load_if_exists=True, direction=objective["direction"], pruner=pruner,
        sampler=optuna.samplers.TPESampler(seed=space["seed"]))


def _retry_stale(optuna, study, out):
    """A trial still "running" was killed: this process holds the directory's lock, so no other
    runs it. It is recorded as failed, its run directory removed, its parameters queued."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        shutil.rmtree(_trial_dir(out, trial.number), ignore_errors=True)
        if trial.params:
            study.enqueue_trial(trial.params)


def _finished(optuna, study):
    states = optuna.trial.TrialState
    return study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED))


def _trial_dir(out, number):
    return out / TRIALS_DIR / f"{number:04d}"


def _suggest(trial, name, spec):
    if "choices" in spec:
        return trial.suggest_categorical(name, spec["choices"])
    suggest = trial.suggest_int if options.SETTINGS[name].type is int else trial.suggest_float
    step = {"step": spec["step"]} if "step" in spec else {}
    return suggest(name, spec["low"], spec["high"], log=spec["log"], **step)


def _run_trial(optuna, study, out, space, position, verbose):
    """Ask for a trial, train it into its run directory, tell the study how it ended."""
    from tfvae.runs import RunDirectory
    from tfvae.training.callbacks import TrialReport
    from tfvae.training.pipeline import train
    from tfvae.training.stops import TrainingDiverged

    states = optuna.trial.TrialState
    trial = study.ask()
    params = {name: _suggest(trial, name, spec) for name, spec in space["params"].items()}
    run = RunDirectory(_trial_dir(out, trial.number))
    trial.set_user_attr("run_dir", str(run.path.relative_to(out)))
    if verbose:
        print(f"trial {trial.number} ({position[0]} of {position[1]}): "
              f"{_params_text(params)}", flush=True)
    objective = space["objective"]
    report = TrialReport(trial, METRICS[objective["metric"]])
    start = time.perf_counter()
    stopped = None
    try:
        # A run directory left by an earlier failed try of this number is the trial's own.
        train(run.path, **options.train_arguments({**space["fixed"], **params}),
              overwrite=run.is_run(), verbose=0, callbacks=[report])
    except TrainingDiverged:
        stopped = "diverged"
    except Exception:
        study.tell(trial, state=states.FAIL)
        raise
    trial.set_user_attr("seconds", round(time.perf_counter() - start, 1))
    rows = run.read_metrics()
    trial.set_user_attr("epochs", len(rows))
    if report.pruned_at is not None:
        stopped = "pruned"
        run.write_state({**run.read_state(), "status": "pruned",
                         "pruned": {"epoch": report.pruned_at}})
    if stopped:
        trial.set_user_attr("stopped", stopped)
        return study.tell(trial, state=states.PRUNED)
    values = [r[objective["metric"]] for r in rows
              if r.get(objective["metric"]) is not None and math.isfinite(r[objective["metric"]])]
    if not values:
        study.tell(trial, state=states.FAIL)
        raise InputError("space", f"objective.metric a metric the runs record (the metrics.csv "
                         f"columns {', '.join(METRICS)})",
                         f"{objective['metric']!r}, which {run.path} has no value of")
    pick = max if objective["direction"] == "maximize" else min
    return study.tell(trial, pick(values) if objective["take"] == "best" else values[-1])


def _params_text(params):
    return ", ".join(f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in params.items())


def _trial_line(trial, space, position):
    state = trial.user_attrs.get("stopped") or trial.state.name.lower()
    value = "" if trial.value is None else f", {space['objective']['metric']} {trial.value:.2f}"
    return (f"trial {trial.number}: {state}{value} after {trial.user_attrs.get('epochs')} "
            f"epochs, {trial.user_attrs.get('seconds', 0):.0f} s ({position[0]} of "
            f"{position[1]} done)")


def _result(optuna, study, out):
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = study.best_trial if complete else None
    return TuneResult(study, best and best.number, best.params if best else None,
                      best and best.value, best and _trial_dir(out, best.number),
                      out / TABLE_FILE, out / FIGURE_FILE)


# -- the summary -------------------------------------------------------------------------------

def trial_rows(study, space):
    """A row per trial of ``study``: the columns of ``TABLE_COLUMNS`` and one per parameter."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state.name == "WAITING":
            continue
        rows.append({"trial": trial.number,
                     "state": trial.user_attrs.get("stopped") or trial.state.name.lower(),
                     "objective": trial.value, "epochs": trial.user_attrs.get("epochs"),
                     "seconds": trial.user_attrs.get("seconds"),
                     "run_dir": trial.user_attrs.get("run_dir"),
                     **{name: trial.params.get(name) for name in space["params"]}})
    return rows


def _write_summary(optuna, study, out, space):
    import csv

    rows = trial_rows(study, space)

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[*TABLE_COLUMNS, *space["params"]])
            writer.writeheader()
            writer.writerows(rows)

    storage.write_atomic(out / TABLE_FILE, write)
    plot_trials(rows, space, out / FIGURE_FILE)


def plot_trials(rows, space, path):
    """The objective by trial, with the best so far among completed trials, and against each
    parameter; pruned trials (their last epoch's value) in grey."""
    from matplotlib import ticker
    from matplotlib.figure import Figure

    params = list(space["params"])
    metric, direction = space["objective"]["metric"], space["objective"]["direction"]
    fig = Figure(figsize=(4 * (1 + len(params)), 3.4), layout="constrained")
    axes = fig.subplots(1, 1 + len(params), squeeze=False)[0]
    shown = [r for r in rows if r["objective"] is not None]
    colors = ["tab:blue" if r["state"] == "complete" else "tab:gray" for r in shown]
    axes[0].scatter([r["trial"] for r in shown], [r["objective"] for r in shown], c=colors, s=18)
    best, line = None, []
    for r in shown:
        if r["state"] == "complete":
            better = max if direction == "maximize" else min
            best = r["objective"] if best is None else better(best, r["objective"])
        line.append(best)
    axes[0].step([r["trial"] for r in shown], [math.nan if b is None else b for b in line],
                 where="post", color="tab:red", label="best so far")
    axes[0].set(xlabel="trial", ylabel=metric, title="by trial (grey: stopped early)")
    axes[0].xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    axes[0].legend(loc="best", fontsize="small")
    for ax, name in zip(axes[1:], params):
        spec = space["params"][name]
        values = [r[name] if "choices" not in spec else str(r[name]) for r in shown]
        ax.scatter(values, [r["objective"] for r in shown], c=colors, s=18)
        ax.set(xlabel=name, ylabel=metric)
        if spec.get("log"):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())  # labels would overlap
        elif options.SETTINGS[name].type is int and "choices" not in spec:
            ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    storage.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
