"""The paper's experiments as data: the budgets, the runs of each figure, and how training is
counted (in *training samples evaluated*, the x-axis of the paper's figures).

A training sample is evaluated each time the model takes a training example through a forward
and backward pass: once per example and training step for AEVB and wake-sleep (whose sleep phase
works on dreams), and for MCEM once per gradient of its HMC transition and once per weight update
(:func:`samples_per_step`).
"""

import dataclasses

import numpy as np

from tfvae.errors import InputError
from tfvae.training.execution import largest_divisor
from tfvae.options import EXPERIMENTS, TRAIN_DEFAULTS

METHODS = ("aevb", "wake_sleep", "mcem")
# method -> the model registry's name for it
METHOD_MODELS = {"aevb": "vae", "wake_sleep": "wake_sleep", "mcem": "mcem"}
BATCH_SIZE = 100
PAPER_LEARNING_RATES = (0.01, 0.02, 0.1)
# Section 5: "initialized by random sampling from N(0, 0.01)". The paper writes a Gaussian as
# N(mean, variance) (its q(z|x) is N(z; mu, sigma^2 I)), so 0.01 is a variance: a standard
# deviation of 0.1. At 0.01 (the init_sd of the authors' later code) wake-sleep on Frey Face
# never leaves the fit of one Gaussian per pixel (docs/reproduction.md).
INIT_STDDEV = 0.1
# Appendix E: per datapoint, 10 HMC leapfrog steps at ~90% acceptance, then 5 weight updates.
MCEM_OPTIONS = {"leapfrog_steps": 10, "weight_updates": 5, "target_accept": 0.9}


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
    manifold_samples: dict  # dataset -> samples (Figure 4)
    points: int  # evaluation points per run, log-spaced
    eval_examples: int  # the bound on the first n train and test examples
    log_px_examples: int  # log p(x) (Figure 3) on the first n train and test examples
    hmc: dict  # options of tfvae.evaluation.likelihood.hmc_log_likelihood for Figure 3
    importance_samples: int  # importance-sampled log p(x) at each fig3 run's end (0: none)
    learning_rates: tuple
    pilot_samples: int
    manifold_grid: int
    train_examples: int | None = None  # Figures 2 and 4 train on the first n (None: all)


def _per_run(samples, manifold_samples=None):
    """The training samples of every Figure 2 and 3 run, and of the manifolds."""
    manifold = samples if manifold_samples is None else manifold_samples
    return {"fig2_samples": {"mnist": samples, "frey_face": samples},
            "fig3_samples": {1000: samples, 50000: samples},
            "manifold_samples": {"mnist": manifold, "frey_face": manifold}}


# All of the paper's runs at 1/200 of its training (5 x 10^5 samples each), log p(x) on appendix
# E's 1000 points with its 50 draws and 4 leapfrog steps, and the manifolds at the paper's 10^7
# samples (blurred at 5 x 10^5): under an hour on a 2-core CPU (measured:
# docs/reproduction.md). Pilots of 5 x 10^4 samples: at 10^4 the candidates for the 500-unit
# networks are still within a nat of each other.
_CPU = Budget(
    name="cpu",
    fig2_mnist_latents=(3, 5, 10, 20, 200), fig2_frey_latents=(2, 5, 10, 20),
    fig3_n_train=(1000, 50000), fig3_mcem_max_train=1000,
    **_per_run(500_000, manifold_samples=10_000_000),
    points=6, eval_examples=1000, log_px_examples=1000,
    hmc={"num_samples": 50, "num_chains": 2, "burnin": 50, "leapfrog_steps": 4},
    importance_samples=1000, learning_rates=PAPER_LEARNING_RATES, pilot_samples=50_000,
    manifold_grid=20,
)

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
    "cpu": _CPU,
    # Ten times the cpu budget's training per run (5 x 10^6 samples; 1/20 of the paper's) and more
    # points on each curve: where the curves settle. On a 2-core CPU a Figure 2 MNIST run takes
    # 3 to 6 minutes and a Frey Face one about 3 (docs/reproduction.md).
    "long": dataclasses.replace(
        _CPU, name="long", **_per_run(5_000_000, manifold_samples=10_000_000), points=9),
    # The paper's scale (up to 10^8 samples per run): for a GPU.
    "paper": dataclasses.replace(
        _CPU, name="paper", **_per_run(100_000_000, manifold_samples=10_000_000), points=16,
        hmc={"num_samples": 500, "num_chains": 5, "burnin": 300, "leapfrog_steps": 10},
        importance_samples=5000, pilot_samples=100_000),
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
    raise InputError("EXPERIMENT", f"one of {', '.join(EXPERIMENTS)} or all", repr(experiment))


def samples_per_step(method):
    """Training samples evaluated by one training step (a minibatch) of ``method``.

    AEVB and wake-sleep take each example of the minibatch through the model once. MCEM's HMC
    transition evaluates the gradient of log p(x, z) at its start and after each leapfrog step,
    and each weight update evaluates the example again: 16 evaluations per example.
    """
    if method == "mcem":
        return BATCH_SIZE * (MCEM_OPTIONS["leapfrog_steps"] + 1 + MCEM_OPTIONS["weight_updates"])
    return BATCH_SIZE


def step_grain(spec, budget):
    """The run's grain, in training steps: its evaluation points and the pilots' halfway point
    sit on multiples of it, so one number of steps per execution serves every ``fit`` of the
    run (``tfvae.paper.loop.steps_per_execution``). The largest divisor of the run's steps up to
    the library's default steps per execution that leaves at least two grains before the first
    point."""
    unit = samples_per_step(spec.method)
    steps = max(1, spec.samples // unit)
    first = min(budget.pilot_samples, spec.samples) // unit
    return largest_divisor(steps, min(TRAIN_DEFAULTS["steps_per_execution"], max(1, first // 2)))


def evaluation_points(spec, budget):
    """Sample counts (whole training steps, on the run's :func:`step_grain`) at which a run is
    evaluated: log-spaced from the pilots' end to the run's."""
    unit = samples_per_step(spec.method)
    grain = unit * step_grain(spec, budget)
    last = max(unit, spec.samples // unit * unit)
    first = min(budget.pilot_samples, last)
    points = np.geomspace(first, last, max(budget.points, 2))[:-1]
    return sorted({max(grain, int(round(p / grain)) * grain) for p in points} | {last})
