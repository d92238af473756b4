"""Reproduce the paper's experiments: Figure 2, Figure 3 and the manifolds of Figure 4.

An experiment is a list of runs (:class:`RunSpec`): one model (``aevb``, ``wake_sleep`` or
``mcem``) on one dataset, trained for a number of *training samples evaluated* (the x-axis of
the paper's figures) and evaluated at points spaced evenly on a log scale. A training sample is
evaluated each time the model takes a training example through a forward and backward pass:
once per example and training step for AEVB and wake-sleep (whose sleep phase works on
dreams), and for MCEM once per gradient of its HMC transition and once per weight update
(:func:`samples_per_step`). The paper's setup (section 5 and appendix E) is followed throughout:

- one hidden layer of tanh units; every parameter initialized from N(0, 0.01), a standard
  deviation of 0.01 (the ``init_sd=1e-2`` of the authors' code);
- Adagrad, its global step size chosen from {0.01, 0.02, 0.1} by the training performance over
  the second half of ``pilot_samples`` (the pilot of the chosen step size counts toward the run;
  the others are dropped); minibatches of 100, L = 1;
- a prior N(0, I) on the parameters: MAP adds ||theta||^2 / 2 per N training examples, i.e. a
  weight decay of 1/N per example.

Each run lives in ``OUT/runs/<experiment>/<run>/``: ``state.json`` (the curve so far, the chosen
step size, the samples done) and one checkpoint of the model with its optimizer state, written
after every evaluation point. A killed run picks up from its last point when the same command is
run again. :func:`reproduce` then writes ``OUT/<experiment>.csv``, the figures and
``OUT/results.md``.
"""

import csv
import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfvae import baselines  # noqa: F401  (registers WakeSleep and MCEM for load_model)
from tfvae import data as datasets
from tfvae.errors import InputError
from tfvae.evaluation import binarize_once
from tfvae.training import read_json, write_atomic, write_json

EXPERIMENTS = ("fig2", "fig3", "manifold")
METHODS = ("aevb", "wake_sleep", "mcem")
BATCH_SIZE = 100
PAPER_LEARNING_RATES = (0.01, 0.02, 0.1)
INIT_STDDEV = 0.01
# Appendix E: per datapoint, 10 HMC leapfrog steps at ~90% acceptance, then 5 weight updates.
MCEM_OPTIONS = {"leapfrog_steps": 10, "weight_updates": 5, "target_accept": 0.9}
CSV_COLUMNS = [
    "experiment", "dataset", "method", "latent_dim", "hidden", "n_train", "learning_rate",
    "samples", "seconds", "train_bound", "test_bound", "train_log_px", "test_log_px",
    "hmc_acceptance",
]


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much of the paper's experiments to run. See :data:`BUDGETS`."""

    name: str
    fig2_mnist_latents: tuple
    fig2_frey_latents: tuple
    fig2_samples: dict  # dataset -> training samples evaluated per run
    fig3_n_train: tuple
    fig3_samples: dict  # n_train -> training samples evaluated per run
    fig3_mcem_max_train: int  # MCEM only where N_train <= this (it is not online)
    manifold_samples: dict  # dataset -> samples
    points: int  # evaluation points per run, log-spaced
    eval_examples: int  # the bound on the first n train and test examples
    log_px_examples: int  # log p(x) (Figure 3) on the first n train and test examples
    hmc: dict  # options of tfvae.likelihood.hmc_log_likelihood for Figure 3
    importance_samples: int  # importance-sampled log p(x) at each fig3 run's end (0: none)
    learning_rates: tuple
    pilot_samples: int
    manifold_grid: int
    train_examples: int | None = None  # Figures 2 and 4 train on the first n (None: all)


BUDGETS = {
    # Every code path at toy size: seconds per run, for CI. One step size, so no pilot.
    "smoke": Budget(
        name="smoke",
        fig2_mnist_latents=(3,), fig2_frey_latents=(2,),
        fig2_samples={"mnist": 3000, "frey_face": 3000},
        fig3_n_train=(1000,), fig3_samples={1000: 3200}, fig3_mcem_max_train=1000,
        manifold_samples={"mnist": 2000, "frey_face": 2000},
        points=2, eval_examples=100, log_px_examples=20,
        hmc={"num_samples": 20, "num_chains": 2, "burnin": 20, "leapfrog_steps": 5},
        importance_samples=100, learning_rates=(0.02,), pilot_samples=1000, manifold_grid=8,
        train_examples=1000,
    ),
    # All of the paper's runs at 1/200 of its training (5 x 10^5 samples each), log p(x) on
    # appendix E's 1000 points with its 50 draws and 4 leapfrog steps: under an hour on a shared
    # 2-core CPU (measured: docs/reproduction.md). Pilots of 5 x 10^4 samples: at 10^4 the
    # candidates for the 500-unit networks are still within a nat of each other.
    "cpu": Budget(
        name="cpu",
        fig2_mnist_latents=(3, 5, 10, 20, 200), fig2_frey_latents=(2, 5, 10, 20),
        fig2_samples={"mnist": 500_000, "frey_face": 500_000},
        fig3_n_train=(1000, 50000), fig3_samples={1000: 500_000, 50000: 500_000},
        fig3_mcem_max_train=1000,
        manifold_samples={"mnist": 500_000, "frey_face": 500_000},
        points=6, eval_examples=1000, log_px_examples=1000,
        hmc={"num_samples": 50, "num_chains": 2, "burnin": 50, "leapfrog_steps": 4},
        importance_samples=1000, learning_rates=PAPER_LEARNING_RATES, pilot_samples=50_000,
        manifold_grid=20,
    ),
    # The paper's scale (up to 10^8 samples per run): for a GPU.
    "paper": Budget(
        name="paper",
        fig2_mnist_latents=(3, 5, 10, 20, 200), fig2_frey_latents=(2, 5, 10, 20),
        fig2_samples={"mnist": 100_000_000, "frey_face": 100_000_000},
        fig3_n_train=(1000, 50000), fig3_samples={1000: 100_000_000, 50000: 100_000_000},
        fig3_mcem_max_train=1000,
        manifold_samples={"mnist": 10_000_000, "frey_face": 10_000_000},
        points=16, eval_examples=1000, log_px_examples=1000,
        hmc={"num_samples": 500, "num_chains": 5, "burnin": 300, "leapfrog_steps": 10},
        importance_samples=5000, learning_rates=PAPER_LEARNING_RATES, pilot_samples=100_000,
        manifold_grid=20,
    ),
}


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run of an experiment."""

    experiment: str
    dataset: str
    method: str
    latent_dim: int
    hidden: int
    n_train: int | None  # the first n training examples; None: the whole split
    samples: int
    log_px: bool = False  # the HMC estimate of log p(x) at each point (Figure 3)

    @property
    def name(self):
        n = f"-n{self.n_train}" if self.n_train else ""
        return f"{self.dataset}-nz{self.latent_dim}{n}-{self.method}"


def experiment_runs(experiment, budget):
    """The runs of ``experiment`` ("fig2", "fig3", "manifold") under ``budget``."""
    b = budget
    if experiment == "fig2":
        return [RunSpec("fig2", dataset, method, nz, hidden, b.train_examples,
                        b.fig2_samples[dataset])
                for dataset, latents, hidden in (("mnist", b.fig2_mnist_latents, 500),
                                                 ("frey_face", b.fig2_frey_latents, 200))
                for nz in latents for method in ("aevb", "wake_sleep")]
    if experiment == "fig3":
        return [RunSpec("fig3", "mnist", method, 3, 100, n, b.fig3_samples[n], log_px=True)
                for n in b.fig3_n_train
                for method in METHODS if method != "mcem" or n <= b.fig3_mcem_max_train]
    if experiment == "manifold":
        return [RunSpec("manifold", dataset, "aevb", 2, hidden, b.train_examples,
                        b.manifold_samples[dataset])
                for dataset, hidden in (("mnist", 500), ("frey_face", 200))]
    raise InputError("EXPERIMENT", f"one of {EXPERIMENTS} or 'all'", repr(experiment))


def samples_per_step(method):
    """Training samples evaluated by one training step (a minibatch) of ``method``.

    AEVB and wake-sleep take each example of the minibatch through the model once. MCEM's HMC
    transition evaluates the gradient of log p(x, z) at its start and after each leapfrog step,
    and each weight update evaluates the example again: 16 evaluations per example.
    """
    if method == "mcem":
        return BATCH_SIZE * (MCEM_OPTIONS["leapfrog_steps"] + 1 + MCEM_OPTIONS["weight_updates"])
    return BATCH_SIZE


def evaluation_points(spec, budget):
    """Sample counts (whole training steps) at which a run is evaluated."""
    unit = samples_per_step(spec.method)
    first = min(budget.pilot_samples, spec.samples)
    points = np.geomspace(first, spec.samples, max(budget.points, 2))
    points = sorted({max(unit, int(round(p / unit)) * unit) for p in points})
    return [p for p in points if p <= spec.samples] or [unit]


# ------------------------------------------------------------------------------ models


def build_model(spec, num_train, seed):
    """The model of ``spec`` with the paper's initialization and weight decay, uncompiled."""
    from tfvae.baselines import MCEM, WakeSleep
    from tfvae.model import VAE

    image_shape = (28, 20, 1) if spec.dataset == "frey_face" else (28, 28, 1)
    likelihood = "gaussian" if spec.dataset == "frey_face" else "bernoulli"
    common = dict(image_shape=image_shape, latent_dim=spec.latent_dim, hidden=spec.hidden,
                  likelihood=likelihood, weight_decay=1.0 / num_train, seed=seed)
    if spec.method == "aevb":
        model = VAE(**common)
    elif spec.method == "wake_sleep":
        model = WakeSleep(**common)
    elif spec.method == "mcem":
        model = MCEM(num_train=num_train, **MCEM_OPTIONS, **common)
    else:
        raise InputError("method", f"one of {METHODS}", repr(spec.method))
    paper_initialize(model, seed)
    return model


def paper_initialize(model, seed, stddev=INIT_STDDEV):
    """Draw every trainable parameter from N(0, stddev^2), as the paper does (section 5)."""
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        v.assign(rng.normal(0.0, stddev, v.shape).astype(np.float32))


# ------------------------------------------------------------------------------ data


class RunData:
    """The training array and the fixed evaluation subsets of one run."""

    def __init__(self, spec, budget, seed):
        ds = datasets.load_dataset(spec.dataset, train_examples=spec.n_train, seed=seed)
        self.dataset = ds
        self.x_train = ds.x_train
        self.dynamic = ds.binarize == "dynamic"
        n = budget.eval_examples
        # log p(x) and the bound are properties of fixed data: one binarization of the
        # training subset (the test split is already binarized once by load_dataset).
        self.eval_train = binarize_once(ds.x_train[:n], seed) if self.dynamic else ds.x_train[:n]
        self.eval_test = ds.x_test[:n]

    def pipeline(self, method, seed):
        from tfvae.baselines import indexed_pipeline

        if method == "mcem":
            ds = indexed_pipeline(self.x_train, batch_size=BATCH_SIZE,
                                  dynamic_binarize=self.dynamic, seed=seed)
        else:
            ds = datasets.make_pipeline(self.x_train, batch_size=BATCH_SIZE, shuffle=True,
                                        dynamic_binarize=self.dynamic, seed=seed)
        return ds.repeat()


# ------------------------------------------------------------------------------ one run


class RunStopped(RuntimeError):
    """A run's training became NaN; its curve up to the last good point is kept."""


class Progress(keras.callbacks.Callback):
    """Calls ``report(samples_done_in_this_call)`` every ``every`` seconds during ``fit``."""

    def __init__(self, report, step_samples, every=30.0):
        super().__init__()
        self.report, self.step_samples, self.every = report, step_samples, every

    def on_train_begin(self, logs=None):
        self.last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.last >= self.every:
            self.last = time.perf_counter()
            self.report((batch + 1) * self.step_samples)


def train_samples(model, data, method, samples, seed, progress=None):
    """Train ``model`` for ``samples`` more training samples evaluated; returns fit's last logs.

    ``progress(samples_done)`` is called now and then during long stretches.
    """
    unit = samples_per_step(method)
    steps = samples // unit
    keras.utils.set_random_seed(seed)
    callbacks = [Progress(progress, unit)] if progress else []
    history = model.fit(data.pipeline(method, seed), steps_per_epoch=steps, epochs=1, verbose=0,
                        shuffle=False, callbacks=callbacks)
    return {k: float(v[-1]) for k, v in history.history.items()}


def training_score(method, logs):
    """The training performance that picks the step size: the bound, or log p(x, z) (MCEM)."""
    value = logs.get("log_joint" if method == "mcem" else "elbo", -math.inf)
    return value if math.isfinite(value) else -math.inf


def mean_bound(model, x, seed):
    """The mean per-example ELBO (estimator B, one z per example) of ``model`` on ``x``."""
    from tfvae.likelihood import _compiled

    fn = _compiled(model, "elbo", lambda: lambda xb, s: model.elbo(xb, seed=s))
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=(math.ceil(len(x) / 500), 2))
    values = [fn(tf.constant(x[i:i + 500]), tf.constant(seeds[k], tf.int32)).numpy()
              for k, i in enumerate(range(0, len(x), 500))]
    return float(np.mean(np.concatenate(values)))


def evaluate_point(spec, budget, model, data, seed):
    """The numbers of one point of a curve."""
    from tfvae.likelihood import hmc_log_likelihood

    row = {}
    if spec.method != "mcem":
        row["train_bound"] = mean_bound(model, data.eval_train, seed)
        row["test_bound"] = mean_bound(model, data.eval_test, seed + 1)
    if spec.log_px:
        accept = []
        n = budget.log_px_examples
        for split, x in (("train", data.eval_train[:n]), ("test", data.eval_test[:n])):
            ll = hmc_log_likelihood(model, x, seed=seed, **budget.hmc)
            row[f"{split}_log_px"] = ll.mean
            accept.append(ll.acceptance)
        row["hmc_acceptance"] = float(np.mean(accept))
    return row


class Run:
    """One run's directory: its state, checkpoints and resume logic."""

    def __init__(self, spec, budget, out_dir, seed, log):
        self.spec, self.budget, self.seed, self.log = spec, budget, seed, log
        self.dir = Path(out_dir) / "runs" / spec.experiment / spec.name
        self.state_path = self.dir / "state.json"

    def load_state(self):
        if not self.state_path.is_file():
            return None
        state = read_json(self.state_path)
        if state["spec"] != dataclasses.asdict(self.spec):
            raise InputError("--out", f"a directory whose run {self.spec.name} matches budget "
                                      f"{self.budget.name!r} (or a new --out)",
                             f"{str(self.dir)!r}, made with other settings")
        return state

    def save(self, state, model):
        """Checkpoint, then state: state.json names the checkpoint, so a crash between the two
        leaves the previous pair intact."""
        name = f"ckpt-{state['samples']:012d}.keras"
        write_atomic(self.dir / name, model.save)
        previous = state.get("checkpoint")
        state["checkpoint"] = name
        write_json(self.state_path, state)
        if previous and previous != name:
            (self.dir / previous).unlink(missing_ok=True)

    def execute(self):
        """Train and evaluate to the end (or resume); returns the final state."""
        spec, budget = self.spec, self.budget
        state = self.load_state()
        if state and state["status"] != "running":
            return state
        data = RunData(spec, budget, self.seed)
        num_train = len(data.x_train)
        points = evaluation_points(spec, budget)
        if state is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            state, model = self._pilot(data, num_train, points[0])
            if state["status"] != "running":
                return state
        else:
            model = keras.saving.load_model(self.dir / state["checkpoint"])
            self.log(f"{spec.name}: resumed at {state['samples']:,} samples")
        pending = [p for p in points if p > state["samples"]]
        while pending:
            point = pending[0]
            start = time.perf_counter()
            seed = self.seed + state["samples"] // samples_per_step(spec.method)
            done = state["samples"]
            logs = train_samples(
                model, data, spec.method, point - done, seed,
                progress=lambda n: self.log(f"{spec.name}: {done + n:,}/{spec.samples:,} samples"))
            if not math.isfinite(logs.get("loss", math.nan)):
                state["seconds"] += time.perf_counter() - start
                model = self._fall_back(state)
                if model is None:
                    return state
                continue
            row = evaluate_point(spec, budget, model, data, seed)
            state["seconds"] += time.perf_counter() - start
            state["samples"] = point
            state["rows"].append({"samples": point, "seconds": round(state["seconds"], 1), **row})
            self.save(state, model)
            self._report(state)
            pending.pop(0)
        if budget.importance_samples and spec.log_px and spec.method != "mcem":
            state["importance"] = self._importance(model, data)
        state["status"] = "finished"
        write_json(self.state_path, state)
        return state

    def _fall_back(self, state):
        """After a NaN: the last checkpoint with the next smaller step size, or None (stop)."""
        smaller = [lr for lr in self.budget.learning_rates if lr < state["learning_rate"]]
        if not smaller:
            state["status"] = "diverged"
            write_json(self.state_path, state)
            self.log(f"{self.spec.name}: training became NaN after {state['samples']:,} samples;"
                     " the curve stops there")
            return None
        lr = max(smaller)
        self.log(f"{self.spec.name}: training became NaN after {state['samples']:,} samples with"
                 f" step size {state['learning_rate']}; continuing from there with {lr}")
        state.setdefault("step_size_changes", []).append(
            {"samples": state["samples"], "from": state["learning_rate"], "to": lr})
        state["learning_rate"] = lr
        model = keras.saving.load_model(self.dir / state["checkpoint"])
        model.optimizer.learning_rate = lr
        write_json(self.state_path, state)
        return model

    def _pilot(self, data, num_train, first_point):
        """Train each candidate step size to the first point; keep the best by training score.

        The score is that of the pilot's second half: the first is dominated by the climb from
        the initialization, where a small step size can look better on average while a larger
        one is already ahead.
        """
        spec = self.spec
        unit = samples_per_step(spec.method)
        first_half = first_point // unit // 2 * unit
        best = None
        start = time.perf_counter()
        for lr in self.budget.learning_rates:
            model = build_model(spec, num_train, self.seed)
            model.compile(optimizer=keras.optimizers.Adagrad(lr))
            if first_half:
                train_samples(model, data, spec.method, first_half, self.seed)
            logs = train_samples(model, data, spec.method, first_point - first_half,
                                 self.seed + first_half // unit)
            score = training_score(spec.method, logs)
            if len(self.budget.learning_rates) > 1:
                self.log(f"{spec.name}: pilot step size {lr}: training score {score:.2f}")
            if best is None or score > best[0]:
                best = (score, lr, model)
        score, lr, model = best
        state = {"spec": dataclasses.asdict(spec), "learning_rate": lr, "samples": first_point,
                 "seconds": time.perf_counter() - start, "status": "running",
                 "num_train": num_train, "rows": []}
        if not math.isfinite(score):
            state["status"] = "diverged"
            self.save(state, model)
            self.log(f"{spec.name}: training became NaN with every step size; no curve")
            return state, model
        row = evaluate_point(spec, self.budget, model, data, self.seed)
        state["rows"].append({"samples": first_point, "seconds": round(state["seconds"], 1), **row})
        self.save(state, model)
        self._report(state)
        return state, model

    def _importance(self, model, data):
        from tfvae.likelihood import log_likelihood

        n = self.budget.log_px_examples
        return {split: log_likelihood(model, x[:n], self.budget.importance_samples,
                                      seed=self.seed).mean
                for split, x in (("train", data.eval_train), ("test", data.eval_test))}

    def _report(self, state):
        row = state["rows"][-1]
        parts = [f"{k} {row[k]:.2f}" for k in ("train_bound", "test_bound", "train_log_px",
                                               "test_log_px") if k in row]
        self.log(f"{self.spec.name}: {row['samples']:,}/{self.spec.samples:,} samples "
                 f"(step size {state['learning_rate']}), {', '.join(parts) or 'trained'}; "
                 f"{state['seconds']:.0f} s")


# ------------------------------------------------------------------------------ experiments


def check_out_dir(out_dir, budget, seed):
    """``OUT/reproduce.json`` records the budget and seed; a resumed OUT must match them."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("--out", "a directory", f"the file {str(out_dir)!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / "reproduce.json"
    settings = {"budget": budget.name, "seed": seed}
    if marker.is_file():
        previous = read_json(marker)
        if previous != settings:
            raise InputError("--out", f"a new directory, or one made with --budget "
                                      f"{previous['budget']} --seed {previous['seed']}",
                             f"{str(out_dir)!r} with --budget {budget.name} --seed {seed}")
    else:
        if any(p.name != "reproduce.json" for p in out_dir.iterdir()):
            raise InputError("--out", "a new or empty directory (or one made by tfvae reproduce)",
                             f"{str(out_dir)!r}, which holds other files")
        write_json(marker, settings)
    return out_dir


def reproduce(experiment, budget="smoke", out_dir="reproduction", seed=0, log=None):
    """Run ``experiment`` ("fig2", "fig3", "manifold" or "all") under ``budget`` into ``out_dir``.

    ``budget`` is a name from :data:`BUDGETS` or a :class:`Budget`. Writes the figures, one CSV of
    curves per experiment and ``results.md``; returns the paths written.
    """
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise InputError("--budget", f"one of {tuple(BUDGETS)}", repr(budget))
        budget = BUDGETS[budget]
    experiments = EXPERIMENTS if experiment == "all" else (experiment,)
    for name in experiments:
        if name not in EXPERIMENTS:
            raise InputError("EXPERIMENT", f"one of {EXPERIMENTS} or 'all'", repr(name))
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError("--seed", "a non-negative integer", repr(seed))
    log = log or (lambda message: print(f"tfvae reproduce: {message}", file=sys.stderr,
                                        flush=True))
    out_dir = check_out_dir(out_dir, budget, seed)
    started = time.perf_counter()
    written = []
    for name in experiments:
        specs = experiment_runs(name, budget)
        states = []
        for i, spec in enumerate(specs):
            log(f"[{name} {i + 1}/{len(specs)}] {spec.name}")
            states.append(Run(spec, budget, out_dir, seed, log).execute())
        written += write_outputs(name, specs, states, budget, out_dir, seed)
    written.append(write_results(out_dir, budget))
    log(f"done in {time.perf_counter() - started:.0f} s; results in {out_dir / 'results.md'}")
    return written


# ------------------------------------------------------------------------------ outputs


def curve_rows(spec, state):
    """The CSV rows of one run's curve."""
    base = {"experiment": spec.experiment, "dataset": spec.dataset, "method": spec.method,
            "latent_dim": spec.latent_dim, "hidden": spec.hidden,
            "n_train": state.get("num_train"), "learning_rate": state.get("learning_rate")}
    return [{**base, **row} for row in state["rows"]]


def _readable(path):
    """Temporary files are created private (0600); outputs get the usual umask-based mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
    return path


def write_csv(path, rows):
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    write_atomic(path, write)
    return _readable(path)


def write_outputs(experiment, specs, states, budget, out_dir, seed):
    from tfvae import plots

    rows = [row for spec, state in zip(specs, states) for row in curve_rows(spec, state)]
    written = [write_csv(out_dir / f"{experiment}.csv", rows)]
    if experiment == "fig2":
        written.append(plots.plot_fig2(rows, out_dir / "fig2.png"))
    elif experiment == "fig3":
        written.append(plots.plot_fig3(rows, out_dir / "fig3.png"))
    else:
        for spec, state in zip(specs, states):
            run_dir = Path(out_dir) / "runs" / spec.experiment / spec.name
            model = keras.saving.load_model(run_dir / state["checkpoint"])
            written.append(plots.plot_manifold(
                model, out_dir / f"fig4_manifold_{spec.dataset}.png", budget.manifold_grid))
            if spec.dataset == "mnist":
                ds = datasets.load_dataset("mnist", seed=seed)
                written.append(plots.plot_latent_means(
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
    write_atomic(path, lambda tmp: Path(tmp).write_text("\n".join(lines)))
    return _readable(path)
