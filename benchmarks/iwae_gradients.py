"""IWAE with the standard and the doubly reparameterized (DReG) encoder gradient.

The IWAE paper's one-stochastic-layer architecture (784-200-200-50 tanh; Burda et al., 2015,
section 5), trained on dynamically binarized MNIST with k = 5 and k = 50 importance samples and
each gradient, for the same number of epochs (Adam 1e-3, batch 100, seed 0). For each model it
prints the last epoch's test bound (on the first ``--test-bound-examples`` test images: all
10,000 unless given), the test log p(x) estimated by importance sampling with ``--k`` (5000)
samples on the first ``--test-examples`` test images (binarized once with a fixed seed), and the
signal-to-noise ratio of the encoder's gradient at the end of training (Rainforth et al., 2018):
for each encoder parameter |mean| / standard deviation of the gradient over ``--draws`` draws of
the noise on one fixed batch of 100 training images, averaged over the parameters.

    python benchmarks/iwae_gradients.py [--epochs 3] [--test-examples 1000] [--draws 100]
                                        [--train-examples 60000] [--k 5000]
                                        [--test-bound-examples 10000] [--out DIR]

Each configuration runs in its own process (``common.run_child``).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import add_out, machine, print_table, run_child, write_results

ARCHITECTURE = {"hidden": 200, "depth": 2, "activation": "tanh", "latent_dim": 50,
                "objective": "iwae"}


def encoder_snr(model, x, draws, dreg):
    """The mean over encoder parameters of |E g| / std g for the encoder's gradient g."""
    import numpy as np
    import tensorflow as tf

    from tfvae import estimators

    variables = model.encoder.trainable_variables

    @tf.function
    def gradient(seed):
        with tf.GradientTape() as tape:
            terms = model._bound_terms(x, seed, None)
            target = estimators.dreg_surrogate(terms["log_w"]) if dreg else terms["bound"]
            loss = -tf.reduce_mean(target)
        return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(loss, variables)], 0)

    grads = np.stack([gradient(tf.constant([i, 99], tf.int32)).numpy() for i in range(draws)])
    std = grads.std(axis=0)
    keep = std > 0
    return float(np.mean(np.abs(grads.mean(axis=0))[keep] / std[keep]))


def child(k, gradient, epochs, test_examples, draws, train_examples, samples, bound_examples):
    """Train one configuration; print a JSON line with its figures (``bound_examples`` 0: the
    test bound on every test image)."""
    from tfvae import log_likelihood
    from tfvae.data import binarize
    from tfvae.runs import RunDirectory
    from tfvae.training.pipeline import train

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        model = train(run_dir, model_config={**ARCHITECTURE, "num_samples": int(k),
                                             "gradient": gradient},
                      data_config={"name": "mnist", "binarize": "dynamic",
                                   "train_examples": int(train_examples),
                                   **({"test_examples": int(bound_examples)}
                                      if int(bound_examples) else {})}, epochs=int(epochs),
                      batch_size=100, optimizer="adam", learning_rate=1e-3, seed=0, verbose=0).model
        run = RunDirectory(run_dir)
        rows = run.read_metrics()
        data = run.load_dataset()
    ll = log_likelihood(model, data.x_test[:int(test_examples)], int(samples), batch_size=20)
    snr = encoder_snr(model, binarize(data.x_train[:100], 0), int(draws), gradient == "dreg")
    print(json.dumps({"k": int(k), "gradient": gradient, "epochs": int(epochs),
                      "test_bound": rows[-1]["test_elbo"], "test_log_px": ll.mean,
                      "test_log_px_stderr": ll.stderr, "encoder_snr": snr,
                      "train_seconds": sum(r["seconds"] for r in rows)}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--test-examples", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--train-examples", type=int, default=60000)
    parser.add_argument("--k", type=int, default=5000, help="importance samples of log p(x)")
    parser.add_argument("--test-bound-examples", type=int, default=0,
                        help="the test bound on the first N test images (default: all)")
    add_out(parser, "iwae_gradients.json")
    args = parser.parse_args(argv)
    if 0 < args.test_bound_examples < args.test_examples:
        parser.error("--test-bound-examples: expected at least --test-examples")
    print(f"machine: {machine()}")
    script = str(Path(__file__).resolve())
    rows = [run_child([script, "--child", k, gradient, args.epochs, args.test_examples,
                       args.draws, args.train_examples, args.k, args.test_bound_examples])
            for k in (5, 50) for gradient in ("standard", "dreg")]
    print_table(rows, ["k", "gradient", "epochs", "test_bound", "test_log_px",
                       "test_log_px_stderr", "encoder_snr", "train_seconds"])
    write_results("iwae_gradients", out=args.out, epochs=args.epochs,
                  test_examples=args.test_examples, draws=args.draws, runs=rows)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:])
    else:
        main()
