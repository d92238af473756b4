"""Wake-sleep on Frey Face: where it stalls, and what takes it out.

Trains wake-sleep on Frey Face (N_z = 2, 200 tanh units, Adagrad, minibatch 100, weight decay
1/N: the setup of ``tfvae reproduce``'s Figure 2) from several starts and prints, at each point,
the mean training bound (first 1,000 training faces), the level no decoder that ignores z can
pass (one Gaussian per pixel fitted by maximum likelihood to those faces), and three numbers
that say whether the two networks talk to each other:

- ``dec_z``: how much the decoder's mean moves with z (its standard deviation over z ~ p(z),
  averaged over pixels);
- ``enc_x``: how much the encoder's mean moves with x (standard deviation over the faces,
  averaged over latent dimensions);
- ``sleep_grad``: the norm of the sleep phase's gradient on the encoder's weights (without the
  weight prior), one batch of dreams.

Starts (``--starts``): ``sd0.01`` and ``sd0.1`` (every parameter from N(0, sd^2)), ``sd0.01-acc0``
(Adagrad's accumulator started at 1e-6 instead of Keras's 0.1: the step of a parameter with a
tiny gradient is then not damped), ``sd0.01-nodecay`` (no weight prior) and ``pretrained`` (the
decoder of an AEVB run of ``--pretrain-samples``, the encoder freshly initialized).

    python benchmarks/wake_sleep_plateau.py [--samples 200000] [--points 5] [--step-size 0.02]
"""

import argparse
import sys

from common import machine

STARTS = ("sd0.01", "sd0.1", "sd0.01-acc0", "sd0.01-nodecay", "pretrained")


def one_gaussian_per_pixel(x):
    import numpy as np

    x = x.reshape(len(x), -1).astype(np.float64)
    return float(np.sum(-0.5 * np.log(2 * np.pi * x.var(axis=0)) - 0.5))


def couplings(model, x, seed=0):
    """dec_z, enc_x and sleep_grad of the module docstring."""
    import tensorflow as tf

    z = model.prior.sample(500, seed=tf.constant([seed, 1]))
    dec_z = float(tf.reduce_mean(tf.math.reduce_std(model.decode(z).mean(), axis=0)))
    enc_x = float(tf.reduce_mean(tf.math.reduce_std(model.encode(x).mean(), axis=0)))
    dream = model.decode(z[:100]).sample(seed=tf.constant([seed, 2]))
    with tf.GradientTape() as tape:
        sleep = tf.reduce_mean(model.encode(dream).log_prob(z[:100]))
    grads = tape.gradient(sleep, model.encoder.trainable_variables)
    return dec_z, enc_x, float(tf.linalg.global_norm(grads))


def frey_face_run(samples):
    """The Figure 2 run's spec and data (N_z = 2)."""
    from tfvae.paper.budgets import BUDGETS, RunSpec
    from tfvae.paper.loop import RunData

    spec = RunSpec("fig2", "frey_face", "wake_sleep", 2, 200, None, samples)
    return spec, RunData(spec, BUDGETS["cpu"], seed=0)


def run(start, args, spec, data):
    import keras

    from tfvae.paper.budgets import RunSpec
    from tfvae.paper.loop import build_model, mean_bound, paper_initialize, train_samples

    model = build_model(spec, data.dataset, seed=0)
    paper_initialize(model, 0, stddev=0.1 if start == "sd0.1" else 0.01)
    if start == "sd0.01-nodecay":
        model.weight_decay = 0.0
    if start == "pretrained":
        vae = build_model(RunSpec("fig2", "frey_face", "aevb", 2, 200, None, 0), data.dataset, 0)
        paper_initialize(vae, 0, stddev=0.01)
        vae.compile(optimizer=keras.optimizers.Adagrad(args.step_size))
        train_samples(vae, data, "aevb", args.pretrain_samples, seed=0)
        print(f"  AEVB decoder after {args.pretrain_samples:,} samples: bound "
              f"{mean_bound(vae, data.eval_train, 0):.1f}", flush=True)
        for mine, trained in zip(model.decoder.weights, vae.decoder.weights):
            mine.assign(trained)
    accumulator = 1e-6 if start == "sd0.01-acc0" else 0.1
    model.compile(optimizer=keras.optimizers.Adagrad(
        args.step_size, initial_accumulator_value=accumulator,
        epsilon=1e-12 if start == "sd0.01-acc0" else 1e-7))
    x = data.eval_train
    rows, done = [], 0
    step = args.samples // args.points
    for point in range(args.points + 1):
        if point:
            train_samples(model, data, "wake_sleep", step, seed=done // 100)
            done += step
        rows.append((done, mean_bound(model, x, 0), *couplings(model, x[:500])))
        print(f"  {start:15s} {done:>9,} samples  bound {rows[-1][1]:8.1f}  dec_z {rows[-1][2]:.4f}"
              f"  enc_x {rows[-1][3]:.4f}  sleep_grad {rows[-1][4]:.4f}", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--points", type=int, default=5)
    parser.add_argument("--step-size", type=float, default=0.02)
    parser.add_argument("--pretrain-samples", type=int, default=500_000)
    parser.add_argument("--starts", nargs="+", choices=STARTS, default=list(STARTS))
    args = parser.parse_args(argv)
    if min(args.samples, args.points, args.pretrain_samples) < 1 or args.step_size <= 0:
        parser.error("--samples, --points, --pretrain-samples and --step-size must be positive")
    print(f"machine: {machine()}")
    spec, data = frey_face_run(args.samples)  # loaded once, shared by every start
    print(f"one Gaussian per pixel (maximum likelihood, first 1,000 training faces): "
          f"{one_gaussian_per_pixel(data.eval_train):.1f} nats per face")
    for start in args.starts:
        run(start, args, spec, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
