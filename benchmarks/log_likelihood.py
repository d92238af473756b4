"""Seconds for the importance-sampled log p(x) with k samples over MNIST test images.

log p(x) ~= log (1/k) sum_l p(x, z_l) / q(z_l|x), z_l ~ q(z|x), by
``tfvae.estimators.importance_log_px`` under ``tf.function``, as ``tfvae.log_likelihood`` runs
it (without XLA, with the same chunks of samples; ``--xla on`` compiles it), with k = 5000
over ``--examples`` of the 10,000 binarized MNIST test images; the time for all 10,000 is
extrapolated when fewer are used. The first batch (compilation) is timed apart and left out.

The bound is the time the decoder's matrix multiplies alone would take at the float32 matmul
rate measured here: images x k x 2 (D*H + H*784) FLOPs. The encoder (once per image) and the
elementwise work (the Bernoulli log-likelihood of 784 pixels per sample) are not counted.

    python benchmarks/log_likelihood.py [--examples 1000] [--samples 5000] [--config paper|relu]
                                        [--run RUN_DIR] [--xla on|off] [--batch-size 100]
                                        [--matmul-seconds 0.5]
                                        [--matmul-sizes 256,512,1024,2048] [--json]

``--run`` times a trained model (its figures then include a meaningful log-likelihood); without
it a freshly initialized model is timed, which costs the same.
"""

import argparse
import functools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

CONFIGS = {"paper": {"hidden": 500, "latent_dim": 20, "activation": "tanh"},
           "relu": {"hidden": 400, "latent_dim": 20, "activation": "relu"}}
TEST_IMAGES = 10000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000,
                        help="test images to use (default 1000, a tenth; 10000 for all)")
    parser.add_argument("--samples", type=int, default=5000, help="k (default 5000)")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="paper")
    parser.add_argument("--run", help="a run directory made by tfvae train, instead of --config")
    parser.add_argument("--xla", choices=["on", "off"], default="off")
    parser.add_argument("--batch-size", type=int, default=100, help="images per call")
    parser.add_argument("--chunk-size", type=int,
                        help="samples per chunk (default: as tfvae.log_likelihood chooses "
                             "for the model)")
    common.add_matmul_seconds(parser)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.examples <= TEST_IMAGES:
        parser.error(f"--examples: expected 1..{TEST_IMAGES}, got {args.examples}")

    import numpy as np
    import tensorflow as tf

    from tfvae import VAE, estimators
    from tfvae.data import load_dataset
    from tfvae.evaluation.likelihood import values_per_decoded_row

    peak = common.matmul_peak_gflops(common.matmul_sizes(args.matmul_sizes),
                                     args.matmul_seconds)
    if args.run:
        from tfvae.runs import load_run

        model, config = load_run(args.run)
        hidden, latent = config["model"].get("hidden", 500), config["model"].get("latent_dim", 20)
    else:
        model = VAE(**CONFIGS[args.config], seed=0)
        hidden, latent = CONFIGS[args.config]["hidden"], CONFIGS[args.config]["latent_dim"]
    if args.chunk_size is None:
        at_once = estimators.decoded_per_chunk(values_per_decoded_row(model))
        args.chunk_size = max(1, min(args.samples, at_once // args.batch_size))
    x_test = load_dataset("mnist").x_test[:args.examples]
    batches = [x_test[i:i + args.batch_size] for i in range(0, len(x_test), args.batch_size)]

    @tf.function(jit_compile=args.xla == "on")
    def log_px(x, seed):
        return estimators.importance_log_px(functools.partial(model.log_weights, x),
                                            num_samples=args.samples, seed=seed,
                                            chunk_size=args.chunk_size)

    seed = tf.constant([0, 0], tf.int32)
    start = time.perf_counter()
    log_px(tf.constant(batches[0]), seed).numpy()
    first = time.perf_counter() - start
    values = []
    start = time.perf_counter()
    for i, batch in enumerate(batches):
        values.append(log_px(tf.constant(batch), seed + i).numpy())
    seconds = time.perf_counter() - start
    n = len(x_test)
    bound = n * args.samples * common.decoder_flops(hidden, latent) / (peak * 1e9)
    report = {
        "examples": n, "fraction_of_test_set": n / TEST_IMAGES, "samples": args.samples,
        "model": args.run or args.config, "hidden": hidden, "latent_dim": latent,
        "xla": args.xla, "batch_size": args.batch_size, "chunk_size": args.chunk_size,
        "seconds": round(seconds, 2), "seconds_per_image": round(seconds / n, 5),
        "seconds_for_10000_extrapolated": round(seconds * TEST_IMAGES / n, 1),
        "first_batch_seconds_with_compilation": round(first, 2),
        "mean_log_px": float(np.mean(np.concatenate(values))),
        "matmul_peak_gflops": round(peak, 1), "decoder_matmul_bound_seconds": round(bound, 2),
        "fraction_of_bound": round(bound / seconds, 3), "machine": common.machine(),
    }
    if args.json:
        print(json.dumps(report))  # one line: benchmarks/compare/run.py reads the last
        return
    m = report["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, load {m['load_average_1min']}; float32 matmul peak "
          f"{report['matmul_peak_gflops']} GFLOP/s")
    print(f"log p(x), k = {args.samples}, {n} MNIST test images ({100 * n / TEST_IMAGES:g}% of "
          f"the test set), model {report['model']} (784-{hidden}-{latent}), XLA {args.xla}:")
    print(f"  {seconds:.2f} s ({report['seconds_per_image'] * 1000:.2f} ms per image; "
          f"{report['seconds_for_10000_extrapolated']} s for all 10,000), plus "
          f"{first:.2f} s for the first batch with compilation")
    print(f"  decoder matmul bound {bound:.2f} s: {report['fraction_of_bound']:.1%} of it; "
          f"mean log p(x) {report['mean_log_px']:.2f} nats")


if __name__ == "__main__":
    main()
