"""The appendix-D log p(x) estimator under the `cpu` budget's settings and heavier ones.

Trains Figure 3's AEVB model (N_z = 3, 100 hidden, the first 1,000 MNIST digits, the paper's
initialization, Adagrad 0.1) for 2x10^5 samples, then estimates log p(x) on the first 200 test
digits with each HMC setting and with importance sampling (k = 1,000), printing the mean, the
acceptance and the seconds taken. Never asserted on: machines differ.

    python benchmarks/hmc_settings.py [--train-samples 200000] [--test-examples 200]
"""

import argparse
import time

import keras

from tfvae.evaluation.likelihood import hmc_log_likelihood, log_likelihood
from tfvae.paper.budgets import BUDGETS, RunSpec
from tfvae.paper.loop import RunData, build_model, train_samples

SETTINGS = {
    "cpu budget (appendix E)": BUDGETS["cpu"].hmc,
    "100 draws, 4 chains, 100 burn-in, 10 leapfrog":
        {"num_samples": 100, "num_chains": 4, "burnin": 100, "leapfrog_steps": 10},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-samples", type=int, default=200_000)
    parser.add_argument("--test-examples", type=int, default=200)
    args = parser.parse_args(argv)
    spec = RunSpec("fig3", "mnist", "aevb", 3, 100, 1000, args.train_samples, log_px=True)
    data = RunData(spec, BUDGETS["cpu"], seed=0)
    model = build_model(spec, data.dataset, seed=0)
    model.compile(optimizer=keras.optimizers.Adagrad(0.1))
    train_samples(model, data, "aevb", spec.samples, seed=0)
    x = data.eval_test[:args.test_examples]
    hmc_log_likelihood(model, x[:10], seed=0, **BUDGETS["smoke"].hmc)  # warm-up
    for name, options in SETTINGS.items():
        start = time.perf_counter()
        ll = hmc_log_likelihood(model, x, seed=0, **options)
        print(f"{name:>48}: log p(x) {ll.mean:8.2f}, acceptance {ll.acceptance:.2f}, "
              f"{time.perf_counter() - start:5.1f} s", flush=True)
    start = time.perf_counter()
    ll = log_likelihood(model, x, 1000, seed=0)
    print(f"{'importance sampling, k = 1000':>48}: log p(x) {ll.mean:8.2f}, "
          f"{time.perf_counter() - start:5.1f} s", flush=True)


if __name__ == "__main__":
    main()
