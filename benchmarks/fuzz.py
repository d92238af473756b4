"""Fuzz every reader of a file a user gives tfvae: mutated, truncated and random versions of a
valid file (bit flips, cuts, length fields inflated) must each be read or refused with one
tfvae.errors.InputError, never another exception, and within a memory ceiling.

    python benchmarks/fuzz.py --seconds 60            # each parser for a minute in all
    python benchmarks/fuzz.py --examples 200 --only npy idx

Prints how many inputs each parser got and every failure (exit 1 if any). tests/test_fuzz.py
runs the same targets for a few examples each.
"""

import argparse
import contextlib
import gzip
import io
import json
import struct
import sys
import tempfile
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, seed, settings, strategies as st

# Peak Python and numpy allocation of one parse of a file of a few kilobytes.
MEMORY_CEILING = 200 * 2 ** 20


def _idx(images):
    dims = images.shape
    return (b"\0\0\x08" + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
            + images.tobytes())


def _npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _png_bytes(pixels):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


class Targets:
    """Each parser of a user file: name -> (valid bytes, file name, parse(path))."""

    def __init__(self, folder, model=None, run_dir=None):
        from tfvae.data import files, image_folders

        self.folder = Path(folder)
        images = (np.random.default_rng(0).random((6, 8, 8)) * 255).astype(np.uint8)
        self.targets = {
            "npy": (_npy_bytes(images), "x.npy", lambda p: files.read_npy(p, "--dataset")),
            "npz": (_npz_bytes(x=images, y=np.arange(6)), "x.npz",
                    lambda p: {k: v for k, v in files.read_npz(p, "--dataset").items()}),
            "idx": (_idx(images), "x-images-idx3-ubyte",
                    lambda p: files.read_idx_array(p, "--dataset")),
            "idx.gz": (gzip.compress(_idx(images)), "x-images-idx3-ubyte.gz",
                       lambda p: files.read_idx_array(p, "--dataset")),
            "image folder": (_png_bytes(images[0]), "folder/x.png",
                             lambda p: image_folders.read_image_folder(p.parent, "--dataset")),
        }
        if run_dir is not None:
            self._add_run_files(Path(run_dir))
        if model is not None:
            self._add_code_file(model)
        self.server = None

    def _add_run_files(self, run_dir):
        from tfvae.models import load_model
        from tfvae.runs import RunDirectory

        def reader(method):
            def parse(path):
                return getattr(RunDirectory(path.parent), method)()
            return parse

        for name, method in (("config.json", "read_config"), ("state.json", "read_state"),
                             ("metrics.csv", "read_metrics")):
            self.targets[name] = ((run_dir / name).read_bytes(), f"run/{name}", reader(method))
        self.targets[".keras"] = ((run_dir / "model.keras").read_bytes(), "model.keras",
                                  load_model)

    def _add_code_file(self, model):
        from tfvae.applications.compression import compress, decompress_batches

        x = np.random.default_rng(1).random((5, *model.image_shape)).astype(np.float32)
        blob = compress(model, x, 3)
        self.targets[".tfvae"] = (blob, "x.tfvae",
                                  lambda p: list(decompress_batches(model, p.read_bytes())))

    def add_client(self):
        """The REST client's reading of metadata and predict replies, from a local server."""
        from tfvae.export.client import Client

        metadata = {"model_spec": {"name": "m", "version": "1"}, "metadata": {"signature_def": {
            "signature_def": {"decode": {
                "inputs": {"z": {"dtype": "DT_FLOAT", "tensor_shape": {
                    "dim": [{"size": "-1"}, {"size": "2"}]}}},
                "outputs": {"x_mean": {"dtype": "DT_FLOAT", "tensor_shape": {
                    "dim": [{"size": "-1"}, {"size": "2"}, {"size": "2"}, {"size": "1"}]}}},
                "method_name": "tensorflow/serving/predict"}}}}}
        predictions = {"predictions": np.zeros((3, 2, 2, 1)).tolist()}
        self.replies = {"metadata": json.dumps(metadata).encode(),
                        "predict": json.dumps(predictions).encode()}
        self.server = _Server(self.replies)
        z = np.zeros((3, 2), np.float32)

        def ask(which):
            def parse(path):
                self.replies[which] = path.read_bytes()
                try:
                    with Client(self.server.url, "m", timeout=10) as client:
                        return client.decode(z)
                finally:
                    self.replies.update(metadata=json.dumps(metadata).encode(),
                                        predict=json.dumps(predictions).encode())
            return parse

        self.targets["client metadata"] = (self.replies["metadata"], "reply.json",
                                           ask("metadata"))
        self.targets["client predict"] = (self.replies["predict"], "reply.json", ask("predict"))

    def close(self):
        if self.server is not None:
            self.server.close()


class _Server:
    """A local HTTP server answering the client with whatever ``replies`` holds."""

    def __init__(self, replies):
        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                body = replies["predict" if self.path.endswith(":predict") else "metadata"]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@st.composite
def mutated(draw, valid):
    """A version of ``valid``: bit flips, a cut, a 4-byte length field set large, bytes
    inserted, or random bytes."""
    data = bytearray(valid)
    kind = draw(st.sampled_from(["flip", "cut", "inflate", "insert", "random", "several"]))
    steps = draw(st.integers(2, 6)) if kind == "several" else 1
    for _ in range(steps):
        step = kind if kind != "several" else draw(st.sampled_from(["flip", "cut", "inflate"]))
        if step == "random":
            return draw(st.binary(max_size=2 * len(valid) + 16))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if step == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif step == "cut":
            del data[at:]
        elif step == "inflate":
            value = draw(st.sampled_from([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 10 ** 9, 2 ** 31 + 1]))
            data[at:at + 4] = struct.pack(draw(st.sampled_from([">I", "<I"])), value)
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


def check(parse, path, data):
    """Write ``data`` to ``path`` and parse it: None if it was read or refused with InputError
    within the ceiling, else what went wrong."""
    from tfvae.errors import InputError

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    tracemalloc.start()
    try:
        parse(path)
    except InputError as exc:
        if "\n" in str(exc) or "safe_mode=False" in str(exc):
            return f"InputError not one line: {exc!r}"
    except Exception as exc:  # noqa: BLE001 - the harness reports what escaped
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    if peak > MEMORY_CEILING:
        return f"peak memory {peak / 2 ** 20:.0f} MiB over {MEMORY_CEILING / 2 ** 20:.0f} MiB"
    return None


def fuzz(targets, name, examples, run_seed=0):
    """Feed ``examples`` mutations of target ``name``; returns (inputs tried, failures)."""
    valid, filename, parse = targets.targets[name]
    path = targets.folder / name.replace(" ", "_") / filename
    tried, failures = [0], []

    @seed(run_seed)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(mutated(valid))
    def run(data):
        tried[0] += 1
        problem = check(parse, path, data)
        if problem:
            failures.append((problem, data[:64]))

    run()
    return tried[0], failures


def tiny_model_and_run(folder):
    """One tiny trained run (and its model), for the run-directory and code-file targets."""
    from tfvae.runs import RunDirectory
    from tfvae.training.pipeline import train

    run_dir = Path(folder) / "tiny-run"
    train(run_dir, model_config={"latent_dim": 2, "hidden": 8},
          data_config={"name": "mnist", "train_examples": 100, "test_examples": 20},
          epochs=1, batch_size=50, optimizer="adam", learning_rate=1e-3, seed=0, verbose=0)
    return RunDirectory(run_dir).load_model(), run_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="time to spend in all, shared among the parsers (default: 60)")
    parser.add_argument("--examples", type=int, default=None,
                        help="inputs per parser per round (default: until --seconds)")
    parser.add_argument("--only", nargs="+", help="parsers to fuzz (default: all)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        model, run_dir = tiny_model_and_run(folder)
        targets = Targets(folder, model=model, run_dir=run_dir)
        targets.add_client()
        names = args.only or list(targets.targets)
        counts, failures = dict.fromkeys(names, 0), []
        end = time.monotonic() + args.seconds
        round_ = 0
        while True:
            for name in names:
                tried, failed = fuzz(targets, name, args.examples or 50, run_seed=round_)
                counts[name] += tried
                failures += [(name, *f) for f in failed]
            round_ += 1
            if args.examples is not None or time.monotonic() >= end:
                break
        targets.close()
    for name, count in counts.items():
        print(f"{name:16s} {count:7d} inputs")
    for name, problem, start in failures:
        print(f"FAILED {name}: {problem} (input starting {start!r})")
    print(f"{sum(counts.values())} inputs, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
