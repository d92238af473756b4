"""Training throughput of AEVB, wake-sleep and MCEM on Figure 3's model (N_z = 3, 100 hidden).

Prints datapoints visited per second of `fit` on 1,000 MNIST digits (batch 100, Adagrad 0.02,
the paper's initialization), after a warm-up that traces the train step, and training samples
evaluated per second as `tfvae reproduce` counts them (16 per MCEM visit). Never asserted on:
machines differ.

    python benchmarks/baselines_throughput.py [steps]
"""

import sys
import time

import keras

from tfvae.paper.budgets import BUDGETS, RunSpec, samples_per_step
from tfvae.paper.loop import RunData, build_model


def main(steps=300):
    for method in ("aevb", "wake_sleep", "mcem"):
        spec = RunSpec("fig3", "mnist", method, 3, 100, 1000, steps * 100)
        data = RunData(spec, BUDGETS["smoke"], seed=0)
        model = build_model(spec, data.dataset, seed=0)
        model.compile(optimizer=keras.optimizers.Adagrad(0.02))
        pipeline = data.pipeline(method, seed=0)
        model.fit(pipeline, steps_per_epoch=20, epochs=1, verbose=0)  # trace
        start = time.perf_counter()
        logs = model.fit(pipeline, steps_per_epoch=steps, epochs=1, verbose=0).history
        seconds = time.perf_counter() - start
        extra = f", HMC acceptance {logs['acceptance'][-1]:.2f}" if "acceptance" in logs else ""
        print(f"{method:>10}: {steps * 100 / seconds:8.0f} examples/s, "
              f"{steps * samples_per_step(method) / seconds:8.0f} samples evaluated/s{extra}",
              flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
