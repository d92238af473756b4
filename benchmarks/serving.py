"""Latency and throughput of the export's signatures: through each loader, and over batch sizes.

    python benchmarks/serving.py [--run-dir RUN] [--repeats 300] [--batches 20]
                                 [--signatures encode decode sample] [--seconds 1.0]

First, for each path it prints the latency of one image through ``encode`` (median and 99th
percentile over ``--repeats`` requests, after a warm-up) and the throughput at batch 256 (images
per second over ``--batches`` batches):

- ``keras eager``: the in-process Keras model, ``model.encode(x)`` called eagerly;
- ``keras tf.function``: the same model through the export's encode function, compiled;
- ``saved_model``: the export reloaded with ``tf.saved_model.load``, its ``encode`` signature;
- ``tf1 session``: the export loaded with the TF1 loader and run by tensor names in a Session,
  the path TF Serving's SavedModelBundle takes (without its network and batching layers).

Then, through the ``tf1 session`` path alone, each of ``--signatures`` at batch sizes 1, 2, 4, ...,
256 (``--seconds`` of back-to-back calls each): the latency of a batch (median, 99th percentile)
and the images per second. These are the figures ``serving/batching.config`` is chosen from (see
serving/README.md): where throughput stops growing with the batch, and what a batch costs.

Without ``--run-dir`` it measures an untrained model of the paper's MNIST size (784-500-20);
weights do not change the cost. Figures depend on the machine and its load: they are printed
with the processor's name, never asserted.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common.py puts the checkout first

from common import machine  # noqa: E402

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def measure(model, export_dir, *, repeats=300, batches=20, batch_size=256, warmup=10):
    """Rows of {"path", "p50_ms", "p99_ms", "images_per_s"} for the encode signature."""
    import tensorflow as tf

    from tfvae.export.signatures import serving_functions

    rng = np.random.default_rng(0)
    one = rng.random((1, *model.image_shape), dtype=np.float32)
    batch = rng.random((batch_size, *model.image_shape), dtype=np.float32)

    def keras_eager(x):
        q = model.encode(x)
        return q.mean().numpy(), q.stddev().numpy()

    compiled = tf.function(serving_functions(model)["encode"], autograph=False,
                           input_signature=[tf.TensorSpec([None, *model.image_shape], tf.float32)])

    def keras_function(x):
        return {k: v.numpy() for k, v in compiled(tf.constant(x)).items()}

    loaded = tf.saved_model.load(str(export_dir)).signatures["encode"]

    def saved_model(x):
        return {k: v.numpy() for k, v in loaded(x=tf.constant(x)).items()}

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(export_dir))
    signature = meta_graph.signature_def["encode"]
    feed = signature.inputs["x"].name
    fetches = [signature.outputs[k].name for k in ("z_mean", "z_stddev")]

    def tf1_session(x):
        return session.run(fetches, {feed: x})

    rows = []
    for name, fn in [("keras eager", keras_eager), ("keras tf.function", keras_function),
                     ("saved_model", saved_model), ("tf1 session", tf1_session)]:
        _timed(lambda: fn(one), warmup)
        latency = _timed(lambda: fn(one), repeats)
        _timed(lambda: fn(batch), 1)
        seconds = sum(_timed(lambda: fn(batch), batches))
        rows.append({"path": name,
                     "p50_ms": 1e3 * statistics.median(latency),
                     "p99_ms": 1e3 * float(np.percentile(latency, 99)),
                     "images_per_s": batches * batch_size / seconds})
    session.close()
    return rows


def measure_batches(model, export_dir, *, signatures=("encode", "decode", "sample"),
                    batch_sizes=BATCH_SIZES, seconds=1.0, warmup=3):
    """Rows of {"signature", "batch", "p50_ms", "p99_ms", "images_per_s"} through the TF1 loader.

    Each batch size runs back-to-back for about ``seconds`` (at least 5 calls) after ``warmup``
    calls; the inputs are the export's warmup rows repeated, valid for every signature.
    """
    import tensorflow as tf

    from tfvae.export.signatures import input_specs
    from tfvae.export.warmup import warmup_inputs

    specs = input_specs(model)
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(export_dir))
    rows = []
    for name in signatures:
        signature = meta_graph.signature_def[name]
        fetches = [info.name for info in signature.outputs.values()]
        one = warmup_inputs(specs[name])
        for batch in batch_sizes:
            feed = {signature.inputs[k].name: np.repeat(v, batch, axis=0) for k, v in one.items()}
            _timed(lambda: session.run(fetches, feed), warmup)
            times, deadline = [], time.perf_counter() + seconds
            while len(times) < 5 or time.perf_counter() < deadline:
                times += _timed(lambda: session.run(fetches, feed), 1)
            rows.append({"signature": name, "batch": batch,
                         "p50_ms": 1e3 * statistics.median(times),
                         "p99_ms": 1e3 * float(np.percentile(times, 99)),
                         "images_per_s": batch / statistics.median(times)})
    session.close()
    return rows


def format_batches(rows):
    lines = [f"{'signature':<12}{'batch':>6}{'p50 ms':>10}{'p99 ms':>10}{'images/s':>11}"]
    for row in rows:
        lines.append(f"{row['signature']:<12}{row['batch']:>6}{row['p50_ms']:>10.3f}"
                     f"{row['p99_ms']:>10.3f}{row['images_per_s']:>11.0f}")
    return "\n".join(lines)


def format_rows(rows, batch_size=256):
    lines = [f"{'path':<20}{'batch-1 p50 ms':>16}{'batch-1 p99 ms':>16}"
             f"{f'batch-{batch_size} images/s':>22}"]
    for row in rows:
        lines.append(f"{row['path']:<20}{row['p50_ms']:>16.3f}{row['p99_ms']:>16.3f}"
                     f"{row['images_per_s']:>22.0f}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="encode latency and throughput per loader")
    parser.add_argument("--run-dir",
                        help="a run directory (default: an untrained paper-size model)")
    parser.add_argument("--repeats", type=int, default=300, help="batch-1 requests to time")
    parser.add_argument("--batches", type=int, default=20, help="batches of 256 to time")
    parser.add_argument("--signatures", nargs="+", default=["encode", "decode", "sample"],
                        help="signatures to time over batch sizes through the TF1 loader")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="seconds of calls per signature and batch size")
    args = parser.parse_args(argv)

    where = machine()  # the load before this process adds its own
    from tfvae import VAE
    from tfvae.export import export_model
    from tfvae.runs import load_run

    model = load_run(args.run_dir)[0] if args.run_dir else VAE(latent_dim=20, hidden=500, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = export_model(model, Path(tmp) / "model" / "1", num_samples=10)
        rows = measure(model, export_dir, repeats=args.repeats, batches=args.batches)
        batch_rows = measure_batches(model, export_dir, signatures=args.signatures,
                                     seconds=args.seconds)
    import tensorflow as tf

    print(f"{where['cpu']}, {where['cores']} cores, load average {where['load_average_1min']} "
          f"before; TensorFlow {tf.__version__}; "
          f"{'run ' + args.run_dir if args.run_dir else 'untrained 784-500-20 MLP'}")
    print(f"\nencode by loader: {args.repeats} batch-1 requests, {args.batches} batches")
    print(format_rows(rows))
    print(f"\nTF1 loader (TF Serving's) by batch size: {args.seconds:g} s of calls each")
    print(format_batches(batch_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
