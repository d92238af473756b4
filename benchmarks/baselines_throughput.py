"""Training throughput of AEVB, wake-sleep and MCEM as `tfvae reproduce` trains them, on Figure
3's model (N_z = 3, 100 hidden) or Figure 2's MNIST one (N_z = 3, 500 hidden).

Prints datapoints visited per second of `fit` on MNIST (batch 100, Adagrad 0.02, the paper's
initialization), after a warm-up that traces (and compiles) the train step, and training samples
evaluated per second as `tfvae reproduce` counts them (16 per MCEM visit). Each method's step
runs three ways, alternated over ``--rounds`` in one sitting: one step per call into TensorFlow,
uncompiled; 25 steps per call, uncompiled; 25 steps per call, XLA-compiled. Never asserted on:
machines differ.

    python benchmarks/baselines_throughput.py [--figure 2|3] [--steps N] [--rounds R] [--out DIR]
"""

import argparse
import statistics
import time

import tensorflow as tf

from common import add_out, machine, write_results
from tfvae.paper.budgets import BUDGETS, RunSpec, samples_per_step
from tfvae.paper.loop import RunData, build_model, compile_model

VARIANTS = {"1 step/call": (1, False), "25 steps/call": (25, False),
            "25 steps/call, XLA": (25, True)}


def rate(spec, data, steps_per_execution, jit, steps):
    """Examples per second of one fit of ``steps`` steps, after a traced warm-up."""
    model = compile_model(build_model(spec, data.dataset, seed=0), 0.02, steps_per_execution,
                          jit)
    pipeline = data.pipeline(spec.method, seed=0)
    model.fit(pipeline, steps_per_epoch=steps_per_execution * 2, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(pipeline, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * 100 / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", type=int, choices=(2, 3), default=3)
    parser.add_argument("--steps", type=int, default=300, help="a multiple of 25")
    parser.add_argument("--rounds", type=int, default=2)
    add_out(parser, "baselines_throughput_figN.json")
    args = parser.parse_args(argv)
    hidden, n_train = (500, None) if args.figure == 2 else (100, 1000)
    print(machine(), flush=True)
    results = {}
    for method in ("aevb", "wake_sleep", "mcem"):
        spec = RunSpec(f"fig{args.figure}", "mnist", method, 3, hidden, n_train, args.steps * 100)
        data = RunData(spec, BUDGETS["smoke"], seed=0)
        rates = {name: [] for name in VARIANTS}
        for _ in range(args.rounds):
            for name in list(rates):
                try:
                    rates[name].append(rate(spec, data, *VARIANTS[name], args.steps))
                except tf.errors.OpError as exc:  # reproduce's XLA decision falls back likewise
                    print(f"{method:>10} {name:>18}: {str(exc).splitlines()[0]}", flush=True)
                    del rates[name]
        base = statistics.median(rates["1 step/call"])
        for name, values in rates.items():
            r = statistics.median(values)
            print(f"{method:>10} {name:>18}: {r:8.0f} examples/s, "
                  f"{r * samples_per_step(method) / 100:8.0f} samples evaluated/s, "
                  f"{r / base:.2f} x one step per call", flush=True)
        results[method] = {name: round(statistics.median(v)) for name, v in rates.items()}
    write_results(f"baselines_throughput_fig{args.figure}", out=args.out, steps=args.steps,
                  rounds=args.rounds, examples_per_second=results)


if __name__ == "__main__":
    main()
