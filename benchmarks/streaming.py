"""Streamed datasets against datasets held in memory: peak memory, throughput, decoding
rate and the time to the first step.

Subcommands, each configuration trained in a fresh child process (``common.run_child``):

- ``memory``: peak resident memory of ``tfvae train`` (the conv model, batch 128, one step per
  execution, XLA off) on a generated folder of N 64x64 RGB PNG images (shapes on gradients),
  for each N of ``--sizes`` and each storage of ``--storages``: ``stream`` (the folder decoded in
  ``tf.data``), ``prepared`` (``tfvae.data.prepare`` first, then streamed: the prepare is not in
  the figure) and ``memory`` (today's path: every image decoded first). One epoch, or
  ``--steps`` steps when given (the table says which). Each row also gives the seconds from
  calling ``train()`` to the end of the first training batch (``first_step_s``) and the
  examples/s of the steps after it.
- ``throughput``: MNIST prepared and streamed against ``name="mnist"`` in memory, the ReLU model
  of ``train_throughput.py`` (784-400-20, batch 128, Adam), alternating for ``--rounds`` rounds;
  best epoch after the first (metrics.csv's examples/s), and the ratio stream / memory.
- ``decode``: images per second that the streamed folder pipeline (``make_train_stream`` of a
  folder of 64x64 JPEGs, no training) delivers, against the examples/s of training the conv
  model on the same images held in memory (its appetite), alternating for ``--rounds`` rounds.

Generated folders and prepared datasets are kept under ``--cache`` (default
``/tmp/tfvae-bench-data``), so a second run skips making them.

    python benchmarks/streaming.py memory [--sizes 10000,100000] [--storages stream,prepared]
                                          [--steps 0] [--image-size 64]
    python benchmarks/streaming.py throughput [--rounds 2] [--epochs 3] [--train-examples N]
    python benchmarks/streaming.py decode [--images 20000] [--batches 100] [--rounds 2]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from generated_images import image_folder  # noqa: E402

CONV = {"architecture": "conv", "hidden": 128, "latent_dim": 32}
BATCH = 128
STORAGES = ("stream", "prepared", "memory")


def prepared(cache, source):
    """``source`` prepared (``tfvae.data.prepare``) under ``cache``, once; the seconds it took
    (None when already there)."""
    from tfvae.data.prepared import is_prepared, prepare

    out = Path(cache) / f"{Path(source).name}.prepared"
    if is_prepared(out):
        return out, None
    started = time.perf_counter()
    prepare(str(source), out, verbose=False)
    seconds = time.perf_counter() - started
    print(f"prepared {source} into {out} ({seconds:.0f} s)", file=sys.stderr)
    return out, seconds


# ------------------------------------------------------------------------------ child processes


def train_child(name, storage, steps, epochs, model, xla, train_examples):
    """Train; return the run's figures: peak RSS, seconds to the end of the first batch, the
    examples/s of the steps after it, metrics.csv's examples/s per epoch."""
    import keras

    from tfvae.runs import RunDirectory
    from tfvae.training.pipeline import train

    marks = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            marks.append(time.perf_counter())
            if steps and len(marks) >= steps:
                self.model.stop_training = True

    config = dict(CONV) if model == "conv" else {"hidden": 400, "latent_dim": 20,
                                                  "activation": "relu"}
    settings = ({"optimizer": "adam", "learning_rate": 1e-3, "steps_per_execution": 1}
                if model == "conv" else {"optimizer": "adam", "learning_rate": 1e-3})
    data = {"name": str(name), "storage": storage}
    if train_examples:
        data["train_examples"] = train_examples
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        train(Path(tmp) / "run", model_config=config, data_config=data, epochs=epochs,
              batch_size=BATCH, seed=0, verbose=0, jit_compile=xla, callbacks=[Clock()],
              **settings)
        total = time.perf_counter() - started
        rates = [row["examples_per_second"] for row in RunDirectory(Path(tmp) / "run")
                 .read_metrics()]
    calls = len(marks)
    return {"first_step_s": round(marks[0] - started, 2), "steps": calls,
            "steady_examples_per_second": round((calls - 1) * BATCH / (marks[-1] - marks[0]), 1)
            if calls > 1 else None,
            "epoch_examples_per_second": rates, "seconds": round(total, 1),
            "peak_rss_mib": round(common.peak_rss_mib(), 1)}


def decode_child(folder, batches):
    """Images/s of the streamed folder's training batches, after 5 batches of warm-up."""
    import tfvae.data as datasets

    x = datasets.load_dataset(str(folder), storage="stream").x_train
    it = iter(datasets.make_train_stream(x, batch_size=BATCH, seed=0))
    for _ in range(5):
        next(it)
    started = time.perf_counter()
    for _ in range(batches):
        next(it)
    return {"images_per_second": round(batches * BATCH / (time.perf_counter() - started), 1)}


def child(args):
    import json

    if args.what == "train":
        result = train_child(args.name, args.storage, args.steps, args.epochs, args.model,
                             args.xla == "on", args.train_examples)
    else:
        result = decode_child(args.name, args.batches)
    print(json.dumps(result))


def run(*argv):
    return common.run_child([Path(__file__).resolve(), "child", *argv])


# ------------------------------------------------------------------------------ measurements


def header(what):
    m = common.machine()
    print(f"processor: {m['cpu']} ({', '.join(m['matrix_features']) or 'no AVX-512'}), "
          f"{m['cores']} cores, load {m['load_average_1min']}; {what}")


def memory(args):
    rows = []
    for n in args.sizes:
        folder = image_folder(args.cache, n, args.image_size, "png")
        for storage in args.storages:
            name, prep_s = (prepared(args.cache, folder) if storage == "prepared"
                            else (folder, None))
            r = run("train", "--name", name, "--storage", "memory" if storage == "memory"
                    else "stream", "--steps", args.steps, "--model", "conv")
            rows.append({"n": n, "storage": storage, "steps": r["steps"],
                         "of_epoch": round(min(1, r["steps"] * BATCH / (n - max(1, n // 10))), 3),
                         "peak_rss_mib": r["peak_rss_mib"], "first_step_s": r["first_step_s"],
                         "examples_per_second": r["steady_examples_per_second"],
                         "seconds": r["seconds"], "prepare_s": None if prep_s is None
                         else round(prep_s, 1)})
            print(rows[-1], file=sys.stderr, flush=True)
    header(f"tfvae train, conv model {CONV}, batch {BATCH}, Adam, XLA off, one step per "
           f"execution, on generated {args.image_size}x{args.image_size} RGB PNG folders "
           f"(90% train); " + ("one epoch" if not args.steps else
                               f"at most {args.steps} steps (of_epoch: the part of the epoch run)"))
    common.print_table(rows, ["n", "storage", "steps", "of_epoch", "peak_rss_mib",
                              "first_step_s", "examples_per_second", "seconds", "prepare_s"])
    print("peak_rss_mib: the child process's ru_maxrss; first_step_s: from calling train() to the "
          "end of the first training batch; examples_per_second: the steps after the first; "
          "prepare_s: tfvae.data.prepare's seconds where this run prepared (not in the figures)")


def throughput(args):
    source, _ = prepared(args.cache, "mnist")
    contenders = {"stream (prepared)": (source, "stream"), "memory": ("mnist", "memory")}
    rates = {name: [] for name in contenders}
    for i in range(args.rounds):
        line = []
        for name, (data, storage) in contenders.items():
            r = run("train", "--name", data, "--storage", storage, "--model", "relu",
                    "--epochs", args.epochs, "--xla", args.xla,
                    "--train-examples", args.train_examples)
            steady = r["epoch_examples_per_second"][1:] or r["epoch_examples_per_second"]
            rates[name].append(max(steady))
            line.append(f"{name} {max(steady):,.0f} ex/s")
        print(f"round {i + 1}: " + ", ".join(line), flush=True)
    header(f"MNIST, 784-400-20 ReLU, batch {BATCH}, Adam, XLA {args.xla}, {args.epochs} epochs"
           f"{f' of {args.train_examples} images' if args.train_examples else ''}, best epoch "
           f"after the first, {args.rounds} rounds alternating")
    a, b = rates["stream (prepared)"], rates["memory"]
    print(f"stream / memory: {statistics.median(a) / statistics.median(b):.3f} (medians "
          f"{statistics.median(a):,.0f} and {statistics.median(b):,.0f} ex/s; per round "
          f"{[round(x / y, 3) for x, y in zip(a, b)]})")


def decode(args):
    folder = image_folder(args.cache, args.images, args.image_size, "jpg")
    decoded, trained = [], []
    for i in range(args.rounds):
        decoded.append(run("decode", "--name", folder, "--batches", args.batches)
                       ["images_per_second"])
        r = run("train", "--name", folder, "--storage", "memory", "--model", "conv",
                "--epochs", 2, "--train-examples", args.train_examples)
        trained.append(r["epoch_examples_per_second"][-1])
        print(f"round {i + 1}: decoded {decoded[-1]:,.0f} images/s, conv training step "
              f"{trained[-1]:,.0f} examples/s", flush=True)
    header(f"{args.images:,} {args.image_size}x{args.image_size} JPEGs; the streamed folder's "
           f"make_train_stream, {args.batches} batches of {BATCH} after 5, against the conv "
           f"model {CONV} trained on {args.train_examples:,} of them in memory (second epoch, "
           "XLA off), alternating")
    print(f"decoded / training appetite: {statistics.median(decoded) / statistics.median(trained):.2f}"
          f" (medians {statistics.median(decoded):,.0f} images/s and "
          f"{statistics.median(trained):,.0f} examples/s)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/tfvae-bench-data"),
                        help="where generated folders and prepared datasets are kept")
    parser.add_argument("--image-size", type=int, default=64)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("memory")
    p.add_argument("--sizes", type=lambda s: [int(float(v)) for v in s.split(",")],
                   default=[10 ** 4, 10 ** 5])
    p.add_argument("--storages", type=lambda s: s.split(","), default=["stream", "prepared"])
    p.add_argument("--steps", type=int, default=0, help="at most this many steps (0: an epoch)")
    p = sub.add_parser("throughput")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-examples", type=int, default=0, help="0: all 60,000")
    p.add_argument("--xla", choices=["on", "off"], default="on")
    p = sub.add_parser("decode")
    p.add_argument("--images", type=int, default=20000)
    p.add_argument("--batches", type=int, default=100)
    p.add_argument("--train-examples", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=2)
    p = sub.add_parser("child")
    p.add_argument("what", choices=["train", "decode"])
    p.add_argument("--name")
    p.add_argument("--storage", default="auto")
    p.add_argument("--steps", type=int, default=0)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--model", choices=["conv", "relu"], default="conv")
    p.add_argument("--xla", choices=["on", "off"], default="off")
    p.add_argument("--train-examples", type=int, default=0)
    p.add_argument("--batches", type=int, default=100)
    args = parser.parse_args(argv)
    if args.command == "memory":
        for s in args.storages:
            if s not in STORAGES:
                parser.error(f"--storages: expected names from {STORAGES}, got {s!r}")
    {"memory": memory, "throughput": throughput, "decode": decode, "child": child}[
        args.command](args)


if __name__ == "__main__":
    main()
