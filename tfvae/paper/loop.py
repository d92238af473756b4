"""One run of the paper's experiments: its model and data, the training loop with the step-size
pilots and the NaN fallback, the evaluation points, and the run's own directory.

Each run lives in ``OUT/runs/<experiment>/<run>/``, a :class:`tfvae.runs.RunDirectory`:
``state.json`` (the curve so far, the chosen step size, the samples done) and one checkpoint of
the model with its optimizer state, ``checkpoints/ckpt-<samples>.keras``, written after every
evaluation point. A killed run picks up from its last point when the same command is run again.
"""

import dataclasses
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfvae.checks import check_choice
from tfvae.data import binarize, load_dataset, make_pipeline
from tfvae.data.graph_checks import mark_checked
from tfvae.errors import InputError, arg
from tfvae.training.execution import largest_divisor, measure_xla, resolve_jit_compile, xla_figures
from tfvae.training.optimizers import make_optimizer
from tfvae.evaluation.likelihood import compiled, hmc_log_likelihood, log_likelihood
from tfvae.models import load_model, model_class
from tfvae.options import TRAIN_DEFAULTS
from tfvae.paper.budgets import (BATCH_SIZE, INIT_STDDEV, MCEM_OPTIONS, METHOD_MODELS, METHODS,
                                 evaluation_points, samples_per_step, step_grain)
from tfvae.interruption import deferred
from tfvae.runs import RunDirectory
from tfvae.storage import write_atomic


def build_model(spec, dataset, seed):
    """The model of ``spec`` for ``dataset`` (its image shape and likelihood, and a weight decay
    of 1/N for its N training examples), with the paper's initialization, uncompiled."""
    check_choice("method", spec.method, METHODS)
    num_train = len(dataset.x_train)
    common = dict(image_shape=dataset.image_shape, latent_dim=spec.latent_dim,
                  hidden=spec.hidden, likelihood=dataset.likelihood,
                  weight_decay=1.0 / num_train, seed=seed)
    cls = model_class(METHOD_MODELS[spec.method])
    if cls.needs_example_index:
        model = cls(num_train, **MCEM_OPTIONS, **common)
    else:
        model = cls(**common)
    paper_initialize(model, seed)
    return model


def paper_initialize(model, seed, stddev=INIT_STDDEV):
    """Draw every trainable parameter from N(0, stddev^2), as the paper does (section 5)."""
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        v.assign(rng.normal(0.0, stddev, v.shape).astype(np.float32))


def compile_model(model, learning_rate, steps_per_execution, jit_compile):
    model.compile(optimizer=make_optimizer("adagrad", learning_rate), jit_compile=jit_compile,
                  steps_per_execution=steps_per_execution)
    return model


def steps_per_execution(segments):
    """Steps per call into TensorFlow for a run trained in ``segments`` (their step counts): the
    largest divisor of all of them up to the library's default, so one traced step serves every
    ``fit`` of the run."""
    return largest_divisor(math.gcd(*segments), TRAIN_DEFAULTS["steps_per_execution"])


def jit_compile(spec, dataset, data, per_execution, seed):
    """Whether the run's step is XLA-compiled: the library's per-machine decision
    (:func:`tfvae.training.execution.resolve_jit_compile`) for the run's whole length."""
    examples = spec.samples // samples_per_step(spec.method) * BATCH_SIZE
    key = {"paper_run": spec.method, "dataset": spec.dataset, "latent_dim": spec.latent_dim,
           "hidden": spec.hidden, "batch_size": BATCH_SIZE, "optimizer": "adagrad",
           "steps_per_execution": per_execution}

    def build(jit):
        return compile_model(build_model(spec, dataset, seed), 0.01, per_execution, jit)

    return resolve_jit_compile("auto", examples, measure=lambda: xla_figures(
        key, lambda: measure_xla(build, data.pipeline(spec.method, seed), per_execution,
                                 BATCH_SIZE)))


def pilot_split(first_point, unit, grain):
    """Where the pilots' second half starts, in samples: about halfway to the first point, on
    the run's grain of ``grain`` steps (the first point holds at least two)."""
    return first_point // unit // 2 // grain * grain * unit


class RunData:
    """The training array and the fixed evaluation subsets of one run."""

    def __init__(self, spec, budget, seed):
        ds = load_dataset(spec.dataset, train_examples=spec.n_train, seed=seed)
        self.dataset = ds
        self.x_train = ds.x_train
        self.dynamic = ds.binarize == "dynamic"
        n = budget.eval_examples
        # log p(x) and the bound are properties of fixed data: one binarization of the
        # training subset (the test split is already binarized once by load_dataset).
        self.eval_train = binarize(ds.x_train[:n], seed) if self.dynamic else ds.x_train[:n]
        self.eval_test = ds.x_test[:n]

    def pipeline(self, method, seed):
        # Still the checked images make_pipeline made: fit need not check them batch by batch.
        return mark_checked(make_pipeline(self.x_train, batch_size=BATCH_SIZE, shuffle=True,
                                          dynamic_binarize=self.dynamic, seed=seed,
                                          with_index=method == "mcem").repeat())


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
    fn = compiled(model, "elbo", lambda: lambda xb, s: model.elbo(xb, seed=s))
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=(math.ceil(len(x) / 500), 2))
    values = [fn(tf.constant(x[i:i + 500]), tf.constant(seeds[k], tf.int32)).numpy()
              for k, i in enumerate(range(0, len(x), 500))]
    return float(np.mean(np.concatenate(values)))


def evaluate_point(spec, budget, model, data, seed):
    """The numbers of one point of a curve."""
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
        self.run = RunDirectory(Path(out_dir) / "runs" / spec.experiment / spec.name)

    def load_state(self):
        """The run's state.json ({} before its first point)."""
        state = self.run.read_json_state("out_dir", "a run's state.json as tfvae reproduce "
                                                    "writes it")
        if state and state.get("spec") != dataclasses.asdict(self.spec):
            raise InputError("out_dir", f"a directory whose run {self.spec.name} matches "
                                        f"{arg('budget', self.budget.name)} (or a new "
                                        f"{arg('out_dir')})",
                             f"{str(self.run.path)!r}, made with other settings")
        return state

    def save(self, state, model):
        """Checkpoint, then state: state.json names the checkpoint, so a crash between the two
        leaves the previous pair intact.

        state.json names it relative to the run directory: a run written before checkpoints/
        (its checkpoints beside state.json, named bare) still resumes, and report.py opens
        either."""
        path = self.run.checkpoint_path(state["samples"])
        name = path.relative_to(self.run.path).as_posix()
        self.run.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        with deferred():  # a stop signal waits for the pair
            write_atomic(path, model.save)
            previous = state.get("checkpoint")
            state["checkpoint"] = name
            self.run.write_state(state)
            if previous and previous != name:
                (self.run.path / previous).unlink(missing_ok=True)

    def execute(self):
        """Train and evaluate to the end (or resume); returns the final state."""
        spec, budget = self.spec, self.budget
        state = self.load_state()
        if state and state["status"] != "running":
            return state
        data = RunData(spec, budget, self.seed)
        points = evaluation_points(spec, budget)
        unit = samples_per_step(spec.method)
        first_half = pilot_split(points[0], unit, step_grain(spec, budget))
        segments = [n // unit for n in np.diff([0, first_half, *points]) if n]
        self.steps_per_execution = steps_per_execution(segments)
        if not state:
            self.jit_compile = jit_compile(spec, data.dataset, data, self.steps_per_execution,
                                           self.seed)
            self.log(f"{spec.name}: {self.steps_per_execution} steps per execution, XLA "
                     f"{'on' if self.jit_compile else 'off'}")
            state, model = self._pilot(data, points[0], first_half)
            if state["status"] != "running":
                return state
        else:
            model = self._load(state)
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
        self.run.write_state(state)
        return state

    def _fall_back(self, state):
        """After a NaN: the last checkpoint with the next smaller step size, or None (stop)."""
        smaller = [lr for lr in self.budget.learning_rates if lr < state["learning_rate"]]
        if not smaller:
            state["status"] = "diverged"
            self.run.write_state(state)
            self.log(f"{self.spec.name}: training became NaN after {state['samples']:,} samples;"
                     " the curve stops there")
            return None
        lr = max(smaller)
        self.log(f"{self.spec.name}: training became NaN after {state['samples']:,} samples with"
                 f" step size {state['learning_rate']}; continuing from there with {lr}")
        state.setdefault("step_size_changes", []).append(
            {"samples": state["samples"], "from": state["learning_rate"], "to": lr})
        state["learning_rate"] = lr
        model = self._load(state)
        model.optimizer.learning_rate = lr
        self.run.write_state(state)
        return model

    def _load(self, state):
        model = load_model(self.run.path / state["checkpoint"])
        # Not yet traced: fit builds its step with the run's steps per execution.
        model.steps_per_execution = self.steps_per_execution
        return model

    def _pilot(self, data, first_point, first_half):
        """Train each candidate step size to the first point; keep the best by training score.

        The score is that of the pilot's second half: the first is dominated by the climb from
        the initialization, where a small step size can look better on average while a larger
        one is already ahead.
        """
        spec = self.spec
        unit = samples_per_step(spec.method)
        best = None
        start = time.perf_counter()
        for lr in self.budget.learning_rates:
            model = compile_model(build_model(spec, data.dataset, self.seed), lr,
                                  self.steps_per_execution, self.jit_compile)
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
                 "num_train": len(data.x_train), "rows": []}
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
