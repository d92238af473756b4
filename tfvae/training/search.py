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

The space file is JSON; every name is a setting of ``train`` (``tfvae.options.SETTINGS``)::

    {"params": {"kl_warmup_epochs": {"low": 0, "high": 20},
                "learning_rate": {"low": 1e-4, "high": 1e-2, "log": true},
                "prior": {"choices": ["normal", "vamp"]}},
     "fixed": {"name": "mnist", "epochs": 10, "latent_dim": 50},
     "objective": {"metric": "test_elbo", "take": "best", "direction": "maximize"},
     "pruning": {"startup_trials": 3, "warmup_epochs": 1},
     "seed": 0}

A range (``low``, ``high``, with ``log`` and ``step``) is for a number setting; ``choices``
for any. ``objective`` defaults as shown: the run's best epoch by the test ELBO. ``pruning``
(or false: none) is Optuna's median rule: from the ``startup_trials``-th finished trial on, a
trial whose epoch metric is worse than the median of the others' at the same epoch stops there,
after its first ``warmup_epochs`` epochs. ``seed`` seeds the sampler (TPE).
"""

import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

from tfvae import options, storage
from tfvae.checks import is_integer
from tfvae.errors import InputError, arg, call
from tfvae.interruption import Interrupted, stop_on_signals
from tfvae.layers.registries import BODIES, LIKELIHOODS

STUDY = "tfvae"
SPACE_FILE = "space.json"
STUDY_FILE = "study.db"
TRIALS_DIR = "trials"
TABLE_FILE = "trials.csv"
FIGURE_FILE = "trials.png"
# The metrics an objective may take: metrics.csv's column -> the epoch's Keras log key.
METRICS = {"test_elbo": "val_elbo", "test_reconstruction": "val_reconstruction",
           "train_elbo": "elbo", "train_reconstruction": "reconstruction"}
OBJECTIVE_DEFAULTS = {"metric": "test_elbo", "take": "best", "direction": "maximize"}
OBJECTIVE_CHOICES = {"metric": tuple(METRICS), "take": ("best", "last"),
                     "direction": ("maximize", "minimize")}
PRUNING_DEFAULTS = {"startup_trials": 3, "warmup_epochs": 1}
_SPACE_KEYS = ("params", "fixed", "objective", "pruning", "seed")
_RANGE_KEYS = ("low", "high", "log", "step")
# Choices read from the registries, so members registered by the user's code are allowed too.
_REGISTERED = {"architecture": BODIES.names, "likelihood": LIKELIHOODS.names}
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


# -- the space ---------------------------------------------------------------------------------

def read_space(path):
    """The space file at ``path``, checked (:func:`check_space`)."""
    from tfvae.readers import read_json

    return check_space(read_json(path, "space", "a search space file (JSON; see "
                                              "docs/tuning.md)"), str(path))


def check_space(space, source="(a dict)"):
    """``space`` checked, with its defaults filled in; an ``InputError`` names ``source`` (the
    file), the key and what was expected."""
    def refuse(key, expected, got):
        raise InputError(f"{arg('space')} {source}, {key}", expected, repr(got))

    if not isinstance(space, dict):
        refuse("the whole", "a JSON object", space)
    for key in space:
        if key not in _SPACE_KEYS:
            refuse(key, f"one of the keys {', '.join(_SPACE_KEYS)}", key)
    params, fixed = space.get("params"), space.get("fixed", {})
    if not isinstance(params, dict) or not params:
        refuse("params", "an object of at least one setting to search", params)
    if not isinstance(fixed, dict):
        refuse("fixed", "an object of settings every trial takes", fixed)
    checked = {"params": {}, "fixed": {}}
    for name, value in fixed.items():
        setting = _setting(refuse, f"fixed.{name}", name)
        checked["fixed"][name] = _check_value(refuse, f"fixed.{name}", setting, value)
    for name, spec in params.items():
        key = f"params.{name}"
        setting = _setting(refuse, key, name)
        if name in fixed:
            refuse(key, "a setting that is not also fixed", name)
        checked["params"][name] = _check_param(refuse, key, setting, spec)
    checked["objective"] = _check_options(refuse, "objective", space.get("objective", {}),
                                          OBJECTIVE_DEFAULTS, OBJECTIVE_CHOICES)
    pruning = space.get("pruning", True)
    if pruning is False or pruning is None:
        checked["pruning"] = None
    else:
        pruning = {} if pruning is True else pruning
        checked["pruning"] = _check_options(refuse, "pruning", pruning, PRUNING_DEFAULTS)
    seed = space.get("seed", 0)
    if not is_integer(seed) or not 0 <= seed < 2 ** 32:
        refuse("seed", "an integer from 0 to 2**32 - 1", seed)
    checked["seed"] = int(seed)
    # As stored in space.json, so a resume compares like with like.
    return json.loads(json.dumps(checked))


def _setting(refuse, key, name):
    if name not in options.SETTINGS:
        refuse(key, "a setting of train (tfvae.options.SETTINGS)", name)
    return options.SETTINGS[name]


def _check_value(refuse, key, setting, value):
    """``value`` of ``setting`` as the space gives it, or refused."""
    if setting.nargs is not None:
        count = setting.nargs if isinstance(setting.nargs, int) else None
        if not isinstance(value, list) or not value or (count and len(value) != count):
            refuse(key, f"a list of {count or 'one or more'} values", value)
        return [_check_value(refuse, key, dataclasses.replace(setting, nargs=None), v)
                for v in value]
    kinds = {bool: isinstance(value, bool), int: is_integer(value) and not isinstance(value, bool),
             float: isinstance(value, (int, float)) and not isinstance(value, bool)
             and math.isfinite(value), str: isinstance(value, str)}
    if not kinds[setting.type] and not (value is None and setting.default is None):
        refuse(key, f"a value of type {setting.type.__name__}", value)
    choices = (_REGISTERED[setting.name]() if setting.name in _REGISTERED else setting.choices)
    if choices and value not in choices:
        refuse(key, f"one of {', '.join(map(str, choices))}", value)
    return value


def _check_param(refuse, key, setting, spec):
    if not isinstance(spec, dict):
        refuse(key, 'an object: {"low": L, "high": H} (with "log" or "step") or {"choices": '
                    '[...]}', spec)
    if "choices" in spec:
        if set(spec) != {"choices"}:
            refuse(key, "choices alone", sorted(spec))
        if setting.nargs is not None:
            refuse(key, "a setting of one value (a list cannot be searched)", setting.name)
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            refuse(f"{key}.choices", "a list of one or more values", spec["choices"])
        return {"choices": [_check_value(refuse, f"{key}.choices", setting, v)
                            for v in spec["choices"]]}
    for name in spec:
        if name not in _RANGE_KEYS:
            refuse(key, "the keys low, high, log, step, or choices alone", name)
    if setting.type not in (int, float) or setting.nargs is not None:
        refuse(key, f"choices (a range is for number settings; {setting.name} is a "
                    f"{setting.type.__name__})", spec)
    if "low" not in spec or "high" not in spec:
        refuse(key, "both low and high", sorted(spec))
    low, high = (_check_value(refuse, f"{key}.{end}", setting, spec[end])
                 for end in ("low", "high"))
    if low is None or high is None or not low <= high:
        refuse(f"{key}.high", f"at least low ({low})", high)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        refuse(f"{key}.log", "true or false", log)
    if log and low <= 0:
        refuse(f"{key}.low", "above 0 for a log scale", low)
    checked = {"low": low, "high": high, "log": log}
    if "step" in spec:
        step = _check_value(refuse, f"{key}.step", setting, spec["step"])
        if log or step is None or step <= 0:
            refuse(f"{key}.step", "a positive step, without log", spec["step"])
        checked["step"] = step
    return checked


def _check_options(refuse, section, given, defaults, choices=None):
    if not isinstance(given, dict):
        refuse(section, f"an object with the keys {', '.join(defaults)}", given)
    checked = dict(defaults)
    for name, value in given.items():
        key = f"{section}.{name}"
        if name not in defaults:
            refuse(key, f"one of the keys {', '.join(defaults)}", name)
        if choices is not None and value not in choices[name]:
            refuse(key, f"one of {', '.join(choices[name])}", value)
        if choices is None and (not is_integer(value) or isinstance(value, bool) or value < 0):
            refuse(key, "an integer, 0 or more", value)
        checked[name] = value
    return checked


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
