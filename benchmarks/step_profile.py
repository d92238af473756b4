"""Where the training step's time goes, by subtraction: the ReLU configuration of
``train_throughput.py`` (784-400-20, batch 128, Adam 1e-3, XLA on; ``--xla off``: off) timed
whole and with one part taken out or changed at a time, each variant in a fresh child process,
alternating over ``--repeats``:

- ``step``: the training step as ``tfvae train`` runs it (on-device binarization, its Adam, one
  fused kernel per variable; 32 steps per execution rounded as ``tfvae train`` rounds them: 67,
  the divisor of an epoch's 469 steps nearest to 32);
- ``rounded down``: 7 steps per execution, the largest divisor of 469 up to 32 (how ``tfvae
  train`` rounded before it took the nearest divisor);
- ``no binarization``: the images binarized once beforehand: the Bernoulli noise's cost;
- ``sgd``: plain SGD instead of Adam: Adam's moment updates' cost;
- ``keras adam``: Keras's own Adam, the same update written as about 40 ops per variable;
- ``one step per execution``: the per-call overhead of going from Python into TensorFlow;
- ``forward only``: the ELBO without its gradient or the update (Keras's ``evaluate``);
- ``matmuls only``: the step's matrix products alone (forward, weight gradients and input
  gradients at the step's own shapes), XLA-compiled: what the step would cost with nothing else.

Each figure is milliseconds per step: the best epoch after the first of one ``--epochs``-epoch
``fit``, timed from the epoch's start to its end as ``tfvae train`` times it (``forward only``:
the best of three ``evaluate`` calls after the first). The bound
is the float32 matmul peak on square matrices (``common.matmul_peak_gflops``) over the step's
FLOPs; ``matmuls only`` shows how far the step's own small shapes are from that peak.

    python benchmarks/step_profile.py [--repeats 2] [--epochs 5] [--train-examples 60000]
                                      [--xla on|off] [--matmul-seconds 0.5]
                                      [--matmul-sizes 256,512,1024,2048] [--json]
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

HIDDEN, LATENT, BATCH, PIXELS = 400, 20, 128, 784
VARIANTS = ("step", "rounded down", "no binarization", "sgd", "keras adam",
            "one step per execution", "forward only", "matmuls only")
TRAIN_EXAMPLES = 60000


def child(variant, epochs, train_examples, xla):
    import keras
    import numpy as np
    import tensorflow as tf

    from tfvae import VAE
    from tfvae.data import load_dataset, make_pipeline, make_train_stream, steps_per_epoch
    from tfvae.training.execution import largest_divisor, nearest_divisor
    from tfvae.options import TRAIN_DEFAULTS
    from tfvae.training.optimizers import make_optimizer

    per_execution = {"one step per execution": lambda steps, requested: 1,
                     "rounded down": largest_divisor}

    steps = steps_per_epoch(train_examples, BATCH)
    if variant == "matmuls only":
        ms = _matmul_chain_ms(tf, steps)
        print(json.dumps({"variant": variant, "ms_per_step": ms}))
        return
    x = load_dataset("mnist", binarize="none").x_train[:train_examples]
    model = VAE(hidden=HIDDEN, latent_dim=LATENT, activation="relu", seed=0)
    if variant == "sgd":
        optimizer = keras.optimizers.SGD(1e-3)
    elif variant == "keras adam":
        optimizer = keras.optimizers.Adam(1e-3)
    else:
        optimizer = make_optimizer("adam", 1e-3)
    model.compile(optimizer=optimizer, jit_compile=xla == "on",
                  steps_per_execution=per_execution.get(variant, nearest_divisor)(
                      steps, TRAIN_DEFAULTS["steps_per_execution"]))
    if variant == "no binarization":
        fixed = (np.random.default_rng(0).random(x.shape) < x).astype(np.float32)
        data = make_train_stream(fixed, batch_size=BATCH)
    else:
        model.dynamic_binarization = True
        data = make_train_stream(x, batch_size=BATCH)
    if variant == "forward only":
        test = make_pipeline((np.random.default_rng(0).random(x.shape) < x).astype(np.float32),
                             batch_size=BATCH)
        seconds = []
        for _ in range(3):
            start = _now()
            model.evaluate(test, verbose=0)
            seconds.append(_now() - start)
    else:
        clock = _epoch_clock()
        model.fit(data, steps_per_epoch=steps, epochs=epochs, verbose=0, callbacks=[clock])
        seconds = clock.seconds
    print(json.dumps({"variant": variant, "ms_per_step": 1000 * min(seconds[1:]) / steps}))


def _epoch_clock():
    """A Keras callback that keeps each epoch's seconds in ``seconds`` (Keras is imported in the
    child processes only)."""
    import keras

    class EpochClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = _now()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(_now() - self.start)

    return EpochClock()


def _now():
    import time

    return time.perf_counter()


def _matmul_chain_ms(tf, steps):
    """The step's matrix products at its shapes: forward x W1, h W2 (mu and sigma), z W3, h W4;
    the weight gradients of all four; the input gradients of all but the first."""
    rng = tf.random.Generator.from_seed(0)
    x = rng.normal([BATCH, PIXELS])
    w1, w2 = rng.normal([PIXELS, HIDDEN]), rng.normal([HIDDEN, 2 * LATENT])
    w3, w4 = rng.normal([LATENT, HIDDEN]), rng.normal([HIDDEN, PIXELS])

    @tf.function(jit_compile=True)
    def chain(x):
        h1 = x @ w1
        p = h1 @ w2
        h2 = p[:, :LATENT] @ w3
        out = h2 @ w4
        # Backward: weight gradients (inputs^T @ output gradients), input gradients.
        g_h2 = out @ tf.transpose(w4)
        g_p = tf.pad(g_h2 @ tf.transpose(w3), [[0, 0], [0, LATENT]])
        g_h1 = g_p @ tf.transpose(w2)
        grads = (tf.transpose(x) @ g_h1, tf.transpose(h1) @ g_p, tf.transpose(p[:, :LATENT]) @ g_h2,
                 tf.transpose(h2) @ out)
        return sum(tf.reduce_sum(g) for g in grads)

    chain(x).numpy()
    best = float("inf")
    for _ in range(3):
        start = _now()
        for _ in range(steps):
            total = chain(x)
        total.numpy()
        best = min(best, (_now() - start) / steps)
    return 1000 * best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5,
                        help="epochs of each variant's fit; the best after the first counts")
    parser.add_argument("--train-examples", type=int, default=TRAIN_EXAMPLES,
                        help=f"MNIST training images per epoch (default {TRAIN_EXAMPLES})")
    common.add_matmul_seconds(parser)
    parser.add_argument("--xla", choices=["on", "off"], default="on",
                        help="XLA-compile the training step (default on)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(f"--epochs: expected at least 2 (the first compiles), got {args.epochs}")
    if args.child:
        return child(args.child, args.epochs, args.train_examples, args.xla)
    me = Path(__file__).resolve()
    peak = common.run_child([me.parent / "train_throughput.py", "--matmul-child",
                             "--matmul-seconds", args.matmul_seconds,
                             "--matmul-sizes", args.matmul_sizes])["matmul_gflops"]
    figures = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):
        for variant in VARIANTS:
            figures[variant].append(common.run_child(
                [me, "--child", variant, "--epochs", args.epochs, "--train-examples",
                 args.train_examples, "--xla", args.xla])["ms_per_step"])
    best = {v: min(f) for v, f in figures.items()}
    flops = common.training_flops_per_example(HIDDEN, LATENT) * BATCH
    bound_ms = 1000 * flops / (peak * 1e9)
    step = best["step"]
    rows = [{"variant": v, "ms_per_step": round(best[v], 3),
             "difference_from_step_ms": round(step - best[v], 3),
             "examples_per_second": round(BATCH / best[v] * 1000) if v != "matmuls only" else None,
             "fraction_of_bound": round(bound_ms / best[v], 3)} for v in VARIANTS]
    report = {"machine": common.machine(), "matmul_peak_gflops": round(peak, 1),
              "bound_ms_per_step": round(bound_ms, 3), "repeats": args.repeats,
              "epochs": args.epochs, "xla": args.xla, "all_figures_ms": figures,
              "results": rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    m = report["machine"]
    print(f"{m['cpu']} ({', '.join(m['matrix_features'])}), {m['cores']} cores, load "
          f"{m['load_average_1min']}; float32 matmul peak {peak:.0f} GFLOP/s: the step's bound "
          f"is {bound_ms:.3f} ms ({BATCH} examples, 784-{HIDDEN}-{LATENT} ReLU, XLA {args.xla})")
    common.print_table(rows, ["variant", "ms_per_step", "difference_from_step_ms",
                              "examples_per_second", "fraction_of_bound"])


if __name__ == "__main__":
    main()
