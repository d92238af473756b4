"""MCEM's HMC step-size adaptation on Figure 3's setup, epoch by epoch.

Trains MCEM (N_z = 3, 100 hidden, the first 1,000 MNIST digits, the paper's initialization,
Adagrad 0.1) with the given adaptation rate and prints, after each epoch (1,000 visits), the
mean acceptance, the mean log p(x, z) at the new samples, the median step size and the mean
|z| of the chains. Never asserted on: runs differ.

    python benchmarks/mcem_adaptation.py [ADAPTATION_RATE] [EPOCHS] [--train-examples 1000]
"""

import argparse

import keras
import numpy as np

from tfvae.paper import budgets as B
from tfvae.paper import loop as L


def main(adaptation_rate=2.0, epochs=31, train_examples=1000):
    L.MCEM_OPTIONS = {**L.MCEM_OPTIONS, "adaptation_rate": float(adaptation_rate)}
    spec = B.RunSpec("fig3", "mnist", "mcem", 3, 100, int(train_examples), 1)
    data = L.RunData(spec, B.BUDGETS["cpu"], seed=0)
    model = L.build_model(spec, data.dataset, seed=0)
    model.compile(optimizer=keras.optimizers.Adagrad(0.1))
    epoch_samples = len(data.x_train) * B.samples_per_step("mcem") // B.BATCH_SIZE
    print(f"adaptation rate {adaptation_rate}: epoch, acceptance, log p(x, z), median step, "
          "mean |z|")
    for epoch in range(1, int(epochs) + 1):
        logs = L.train_samples(model, data, "mcem", epoch_samples, seed=epoch)
        print(f"{epoch:4d} {logs['acceptance']:8.3f} {logs['log_joint']:9.1f} "
              f"{np.median(model.step_sizes.numpy()):8.3f} "
              f"{np.abs(model.latents.numpy()).mean():6.2f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("adaptation_rate", nargs="?", type=float, default=2.0)
    parser.add_argument("epochs", nargs="?", type=int, default=31)
    parser.add_argument("--train-examples", type=int, default=1000,
                        help="the first N MNIST digits (an epoch is N visits)")
    main(**vars(parser.parse_args()))
