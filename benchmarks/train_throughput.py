"""Training throughput of ``tfvae train`` on MNIST, with XLA on and off.

Configurations:

- ``paper``: the paper's MLP, 784-500-20 tanh, batch 100, Adagrad (learning rate 0.01);
- ``relu``:  784-400-20 ReLU, batch 128, Adam (learning rate 1e-3);
- ``resnet``: the residual body (hidden 32, depth 1, GELU, latent_dim 32, the discretized
  logistic with one component), batch 64, Adam (learning rate 1e-3), on the 32x32 RGB images
  of ``--data``: trained only by ``compare/run.py --body resnet``, which writes them, as the
  matmul bound below counts an MLP's products.

Each (configuration, XLA) pair trains in a fresh process through ``tfvae.training.pipeline.train``, the
code behind ``tfvae train`` (in-memory epoch stream, binarization on the device, several steps per
execution), for ``--epochs`` epochs over ``--train-examples`` images. The figure is the best
epoch's training examples per second after the first (which includes compilation), from the
run's ``metrics.csv``; the median over those epochs is printed beside it. Peak resident memory
is the process's. The bound is the float32 matmul rate measured here divided by the model's
training FLOPs per example (see ``common.training_flops_per_example``).

    python benchmarks/train_throughput.py [--configs paper,relu] [--xla on,off] [--epochs 4]
                                          [--repeats 1] [--mixed-precision float16]
                                          [--steps-per-execution 32,7] [--json]
                                          [--train-examples 60000] [--matmul-seconds 0.5]
                                          [--matmul-sizes 256,512,1024,2048]

On a machine shared with other work every figure is a lower bound: run it when the machine is
quiet, or several times (``--repeats``), and read the best.
"""

import argparse
import functools
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

CONFIGS = {
    "paper": {"model": {"hidden": 500, "latent_dim": 20, "activation": "tanh"},
              "batch_size": 100, "optimizer": "adagrad", "learning_rate": 0.01},
    "relu": {"model": {"hidden": 400, "latent_dim": 20, "activation": "relu"},
             "batch_size": 128, "optimizer": "adam", "learning_rate": 1e-3},
    "resnet": {"model": {"architecture": "resnet", "hidden": 32, "depth": 1,
                         "activation": "gelu", "latent_dim": 32,
                         "likelihood": "discretized_logistic", "logistic_components": 1},
               "batch_size": 64, "optimizer": "adam", "learning_rate": 1e-3},
}
# The configurations on MNIST, measured against the matmul bound.
MNIST = ("paper", "relu")


def child(config_name, xla, epochs, train_examples, mixed_precision, steps_per_execution,
          data=None):
    """Train one configuration (on MNIST, or on the images of the file ``data``); print a JSON
    line with its figures. ``xla``: on, off or auto (``tfvae train``'s default)."""
    from tfvae.options import JIT_COMPILE, TRAIN_DEFAULTS
    from tfvae.runs import RunDirectory
    from tfvae.training.pipeline import train

    config = CONFIGS[config_name]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        vae = train(run_dir, model_config=config["model"],
                    data_config={"name": str(data or "mnist"), "train_examples": train_examples},
                    epochs=epochs, batch_size=config["batch_size"], optimizer=config["optimizer"],
                    learning_rate=config["learning_rate"], seed=0, verbose=0,
                    jit_compile=JIT_COMPILE[xla], mixed_precision=mixed_precision,
                    steps_per_execution=steps_per_execution
                    or TRAIN_DEFAULTS["steps_per_execution"]).model
        rates = [row["examples_per_second"] for row in RunDirectory(run_dir).read_metrics()]
    steady = rates[1:] or rates
    print(json.dumps({
        "config": config_name, "xla": xla, "compiled": vae.jit_compile,
        "mixed_precision": mixed_precision or "none",
        "examples_per_second": max(steady), "median_examples_per_second": statistics.median(steady),
        "first_epoch_examples_per_second": rates[0], "epochs": epochs,
        "steps_per_execution": vae.steps_per_execution, "parameters": vae.count_params(),
        "peak_rss_mib": round(common.peak_rss_mib(), 1),
    }))


def matmul_child(seconds, sizes=common.MATMUL_SIZES):
    """The matmul peaks: float32 (the bound) and, beside it, bfloat16 through TensorFlow's
    kernels and through XLA, which a CPU with bfloat16 matrix units can run faster."""
    peak = functools.partial(common.matmul_peak_gflops, sizes, seconds)
    print(json.dumps({"matmul_gflops": peak(),
                      "bfloat16_matmul_gflops": {
                          "tensorflow": peak(dtype="bfloat16"),
                          "xla": peak(dtype="bfloat16", jit_compile=True)}}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="paper,relu")
    parser.add_argument("--xla", default="on,off")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-examples", type=int, default=60000)
    parser.add_argument("--repeats", type=int, default=1,
                        help="run every configuration this many times, alternating")
    parser.add_argument("--mixed-precision", choices=["float16", "bfloat16"])
    parser.add_argument("--steps-per-execution", default="default",
                        help="steps per execution as tfvae train is asked for them (it rounds "
                             "them to a divisor of the epoch's steps), comma-separated to "
                             "alternate several; default: tfvae train's")
    common.add_matmul_seconds(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument("--child", nargs=6, metavar=("CONFIG", "XLA", "EPOCHS", "N", "MP", "SPE"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)  # the child's images, not MNIST
    parser.add_argument("--matmul-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        name, xla, epochs, n, mp, spe = args.child
        return child(name, xla, int(epochs), int(n), None if mp == "none" else mp,
                     None if spe == "default" else int(spe), args.data)
    if args.matmul_child:
        return matmul_child(args.matmul_seconds, common.matmul_sizes(args.matmul_sizes))

    configs = args.configs.split(",")
    xlas = args.xla.split(",")
    for name in configs:
        if name not in MNIST:
            parser.error(f"--configs: expected names from {list(MNIST)}, got {name!r}")
    for xla in xlas:
        if xla not in ("on", "off"):
            parser.error(f"--xla: expected on and/or off, got {xla!r}")
    requested = args.steps_per_execution.split(",")
    for spe in requested:
        if not (spe == "default" or spe.isdigit() and int(spe) > 0):
            parser.error(f"--steps-per-execution: expected positive integers, got {spe!r}")
    me = Path(__file__).resolve()
    peaks = common.run_child([me, "--matmul-child", "--matmul-seconds", args.matmul_seconds,
                              "--matmul-sizes", args.matmul_sizes])
    peak = peaks["matmul_gflops"]
    runs = {}
    for _ in range(args.repeats):
        for name in configs:
            for xla in xlas:
                for spe in requested:
                    result = common.run_child([me, "--child", name, xla, args.epochs,
                                               args.train_examples, args.mixed_precision or "none",
                                               spe])
                    runs.setdefault((name, xla, spe), []).append(result)
    rows = []
    for (name, xla, _), results in runs.items():
        model = CONFIGS[name]["model"]
        flops = common.training_flops_per_example(model["hidden"], model["latent_dim"])
        bound = peak * 1e9 / flops
        best = max(r["examples_per_second"] for r in results)
        rows.append({
            "config": name, "xla": xla, "mixed_precision": results[0]["mixed_precision"],
            "batch": CONFIGS[name]["batch_size"], "optimizer": CONFIGS[name]["optimizer"],
            "examples_per_second": best,
            "median_examples_per_second": statistics.median(
                r["median_examples_per_second"] for r in results),
            "first_epoch_examples_per_second": statistics.median(
                r["first_epoch_examples_per_second"] for r in results),
            "steps_per_execution": results[0]["steps_per_execution"],
            "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
            "training_mflop_per_example": round(flops / 1e6, 3),
            "matmul_bound_examples_per_second": round(bound),
            "fraction_of_bound": round(best / bound, 3),
        })
    report = {"machine": common.machine(), "matmul_peak_gflops": round(peak, 1),
              "bfloat16_matmul_peak_gflops": {k: round(v, 1) for k, v in
                                              peaks["bfloat16_matmul_gflops"].items()},
              "epochs": args.epochs, "train_examples": args.train_examples,
              "repeats": args.repeats, "results": rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    m = report["machine"]
    bf16 = report["bfloat16_matmul_peak_gflops"]
    print(f"{m['cpu']} ({', '.join(m['matrix_features']) or 'no AVX-512'}), {m['cores']} cores, "
          f"load {m['load_average_1min']}; matmul peak float32 {report['matmul_peak_gflops']} "
          f"GFLOP/s, bfloat16 {bf16['tensorflow']} (TensorFlow), {bf16['xla']} (XLA); "
          f"{args.epochs} epochs of "
          f"{args.train_examples} MNIST images, best epoch after the first, "
          f"{args.repeats} run(s) each")
    common.print_table(rows, ["config", "xla", "mixed_precision", "batch", "optimizer",
                              "steps_per_execution", "examples_per_second", "median_examples_per_second",
                              "peak_rss_mib", "matmul_bound_examples_per_second",
                              "fraction_of_bound"])


if __name__ == "__main__":
    main()
