"""How a training step executes: XLA compilation, mixed precision, steps per execution."""

import contextlib
import json
import math
import os
import time
from pathlib import Path

import keras
import tensorflow as tf

from tfvae import options
from tfvae.errors import InputError, arg
from tfvae.training.machine import cpu_name
from tfvae.storage import write_json

# Shorter runs than this are never compiled nor measured: uncompiled, they train in well under
# the second or more that XLA takes to compile a step (benchmarks/README.md).
XLA_NEVER_BELOW = 20_000
# Where each machine's measured XLA figures are kept, per model (TFVAE_CACHE_DIR overrides).
CACHE_DIR = Path.home() / ".cache" / "tfvae"
_XLA_CACHE = "xla_break_even.json"
# Timing the compiled step is skipped when the run, uncompiled as timed, would take less than this
# share of the cap on the timing: compiling could save it less than timing may cost.
SHORT_RUN_SHARE = 1.0


def resolve_jit_compile(jit_compile, remaining_examples, measure):
    """``jit_compile`` for ``compile``: "auto" is on for one device when the run is long enough
    for XLA's compile time to be repaid on this machine.

    ``measure``: a callable returning this machine's figures for the model (:func:`xla_figures`),
    called only when the run is long enough for the question to arise. Call it under the
    strategy's scope.
    """
    if jit_compile != "auto":
        return jit_compile
    if tf.distribute.has_strategy() or remaining_examples < XLA_NEVER_BELOW:
        return False
    return remaining_examples >= measure()["break_even_examples"]


def xla_figures(key, measure, cap=math.inf):
    """This machine's XLA figures for the model described by ``key`` (a dict: the model's config
    and the step's settings): read from the cache, or measured by ``measure()`` (see
    :func:`measure_xla`) and cached. The machine (its CPU and core count) and TensorFlow's
    version are part of the key, so figures never cross machines. A timing stopped at a smaller
    cap than ``cap`` is taken again; one skipped for a short run is not kept."""
    key = json.dumps({"cpu": cpu_name(), "cores": os.cpu_count(), "tensorflow": tf.__version__,
                      **key}, sort_keys=True, default=str)
    path = Path(os.environ.get("TFVAE_CACHE_DIR", CACHE_DIR)) / _XLA_CACHE
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if cache.get(key, {}).get("stopped_at_seconds", math.inf) < cap:
        del cache[key]
    if key not in cache:
        figures = measure()
        if "short_run_seconds" in figures:
            return figures
        cache[key] = figures
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, cache)
        except OSError:  # a read-only home: measured again next time
            pass
    return cache[key]


def timed_fits(model, data, steps, repeats=3, deadline=math.inf):
    """Seconds of ``repeats`` one-epoch ``fit`` calls of ``steps`` steps each on ``data``: the
    first includes tracing (and XLA's compilation), the others are the step's own time plus
    ``fit``'s fixed cost per call. None begins after ``deadline`` (``time.perf_counter()``): then
    fewer come back."""
    seconds = []
    for _ in range(repeats):
        if time.perf_counter() >= deadline:
            break
        start = time.perf_counter()
        model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
        seconds.append(time.perf_counter() - start)
    return seconds


def measure_xla(build, data, steps_per_execution, examples_per_step, min_steps=64, *,
                cap=math.inf, remaining=None):
    """Time a model's training step uncompiled and compiled here: the figures the "auto"
    decision needs.

    ``build(jit_compile)`` returns a fresh compiled model; ``data`` is a training stream for its
    ``fit``. Each variant fits whole executions, at least ``min_steps`` steps (enough for the
    time per example to stand out of ``fit``'s fixed cost), three times (:func:`timed_fits`).
    Returns the compile seconds (the compiled variant's extra first-fit time), both rates and
    ``break_even_examples``, the examples after which compiling has paid (infinite when the
    compiled step is not faster, or XLA cannot compile it: then ``xla_error`` says why).

    Bounded by ``cap`` seconds, checked before each ``fit`` (one under way, XLA's compilation
    included, runs to its end): past it, the figures are ``stopped_at_seconds`` with an infinite
    break-even, which trains uncompiled. When the ``remaining`` examples of the run would take
    less than ``SHORT_RUN_SHARE`` of the cap uncompiled, the compiled step is not timed: the
    figures are ``short_run_seconds``, the run's estimated seconds, with an infinite break-even.
    """
    deadline = time.perf_counter() + cap
    steps = math.ceil(min_steps / steps_per_execution) * steps_per_execution
    examples = steps * examples_per_step
    first, per_example = {}, {}
    for jit in (False, True):
        try:
            seconds = timed_fits(build(jit), data, steps, deadline=deadline)
        except (tf.errors.OpError, NotImplementedError, ValueError) as exc:
            if not jit:
                raise
            # An op XLA cannot compile: "auto" trains uncompiled.
            return {"break_even_examples": math.inf, "xla_error": str(exc).splitlines()[0]}
        if len(seconds) < 3:
            return {"break_even_examples": math.inf, "stopped_at_seconds": cap}
        first[jit], per_example[jit] = seconds[0], min(seconds[1:]) / examples
        if not jit and remaining is not None:
            run_seconds = remaining * per_example[False]
            if run_seconds < SHORT_RUN_SHARE * cap:
                return {"break_even_examples": math.inf,
                        "short_run_seconds": round(run_seconds, 1)}
    compile_seconds = max(0.0, (first[True] - examples * per_example[True])
                          - (first[False] - examples * per_example[False]))
    gain = per_example[False] - per_example[True]
    return {"compile_seconds": round(compile_seconds, 3),
            "uncompiled_examples_per_second": round(1 / per_example[False]),
            "compiled_examples_per_second": round(1 / per_example[True]),
            "break_even_examples": (round(compile_seconds / gain) if gain > 0 else math.inf)}


def dtype_policy(mixed_precision):
    """The Keras dtype policy for ``--mixed-precision`` (None: float32 throughout)."""
    if mixed_precision is None:
        return None
    if mixed_precision not in options.MIXED_PRECISION:
        raise InputError("mixed_precision", f"one of {options.MIXED_PRECISION} or none",
                         repr(mixed_precision))
    return f"mixed_{mixed_precision}"


@contextlib.contextmanager
def global_dtype_policy(policy):
    """Layers take the global policy when built, so the model is built (and loaded) under it."""
    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def largest_divisor(n, at_most):
    """The largest divisor of ``n`` that is at most ``at_most``."""
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def nearest_divisor(n, target):
    """The divisor of ``n`` closest to ``target`` by ratio (the smaller one on a tie).

    Steps per execution are rounded this way: rounding down would turn MNIST's 469 steps of 128
    (7 x 67) and a request of 32 into 7, and a prime number of steps into 1, where each call
    into TensorFlow costs about a millisecond (``benchmarks/step_profile.py``).
    """
    return min((d for d in range(1, n + 1) if n % d == 0),
               key=lambda d: (abs(math.log(d / target)), d))


def run_jit_compile(jit_compile, resume, config, model_kwargs, dataset, train_labels,
                    per_execution, given_optimizer, remaining, cap=math.inf, say=None):
    """Whether the run's step is XLA-compiled: as the run was, for a resume left at "auto" (its
    numerics resumed exactly); otherwise ``jit_compile``, "auto" decided by this machine's
    figures for the ``remaining`` examples, timed within ``cap`` seconds when the machine has
    none yet. ``say(line)`` is told before a timing begins, and the decision from figures."""
    if resume and jit_compile == "auto" and "jit_compile" in config["train"]:
        return config["train"]["jit_compile"]
    say = say or (lambda line: None)
    figures = {}

    def measure():
        # The model drew its weights when built: measuring XLA here, which builds copies of
        # it, leaves the run as it would be without.
        figures.update(_xla_figures(config, model_kwargs, dataset, train_labels, per_execution,
                                    given_optimizer, cap, remaining, say))
        return figures

    decision = resolve_jit_compile(jit_compile, remaining, measure)
    if figures:
        say(xla_decision(bool(decision), figures, remaining))
    return decision


def xla_decision(on, figures, remaining):
    """The line that says whether a run is XLA-compiled, and why, from this machine's
    ``figures`` for its model and the ``remaining`` examples it trains."""
    state = "on" if on else "off"
    if "stopped_at_seconds" in figures:
        return (f"tfvae: XLA {state}: timing it stopped at its cap of "
                f"{figures['stopped_at_seconds']:g} s ({arg('xla_measure_seconds')}); training "
                "uncompiled, the default")
    if "short_run_seconds" in figures:
        return (f"tfvae: XLA {state}: this run takes about {figures['short_run_seconds']:g} s "
                "uncompiled, too short to repay timing XLA; training uncompiled")
    if "xla_error" in figures:
        return f"tfvae: XLA {state}: XLA cannot compile the step ({figures['xla_error']})"
    pays = figures["break_even_examples"]
    return (f"tfvae: XLA {state}: " + (
        "the compiled step is no faster on this machine" if not math.isfinite(pays)
        else f"compiling ({figures['compile_seconds']:g} s here) pays after {pays:,} examples, "
             f"and the run trains {remaining:,}"))


def _xla_figures(config, model_kwargs, dataset, train_labels, steps_per_execution,
                 given_optimizer, cap=math.inf, remaining=None, say=None):
    """This machine's XLA figures (:func:`xla_figures`) for a run's model and step, its
    optimizer a copy of ``given_optimizer`` or made from ``config``: measured once on fresh
    copies of the model over the first training batches within ``cap`` seconds (``say`` told
    first), then cached."""
    from tfvae import data as datasets
    from tfvae.models import model_class
    from tfvae.training.optimizers import run_optimizer

    batch = config["train"]["batch_size"]
    key = {"model_type": config["model_type"], "model": model_kwargs, "batch_size": batch,
           "optimizer": config["train"]["optimizer"], "binarize": config["data"]["binarize"],
           "steps_per_execution": steps_per_execution,
           "dtype_policy": keras.config.dtype_policy().name,
           **{name: config["train"].get(name) for name in ("skip_norm", "ema")
              if config["train"].get(name) is not None}}

    def build(jit_compile):
        model = model_class(config["model_type"])(**model_kwargs, seed=0)
        model.skip_norm = config["train"].get("skip_norm")
        model.compile(optimizer=run_optimizer(config["train"], steps_per_execution,
                                              given_optimizer),
                      jit_compile=jit_compile, steps_per_execution=steps_per_execution)
        return model

    def measure():
        head = slice(0, steps_per_execution * batch)
        data = datasets.make_train_stream(
            dataset.x_train[head], batch_size=batch,
            labels=None if train_labels is None else train_labels[head])
        if say:
            say("tfvae: timing this model's training step with and without XLA on this "
                f"machine, once for the model: at most {cap:g} s ({arg('xla_measure_seconds')}; "
                f"a {arg('jit_compile')} other than auto skips it)")
        return measure_xla(build, data, steps_per_execution, batch, cap=cap,
                           remaining=remaining)

    return xla_figures(key, measure, cap)
