"""Files that lie: every reader of a file a user gives refuses a corrupt or hostile one in one line
naming it (exit 2 from the CLI), within memory proportionate to the command, never a traceback."""

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from conftest import cli_env
from tfvae.cli import main


def one_line_refusal(argv, capsys, names):
    """Run the CLI in-process: exit 2, one line on stderr that names ``names``."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert str(names) in lines[0], lines[0]
    assert "Traceback" not in err and "safe_mode=False" not in err
    return lines[0]


def peak_mb(code):
    """Peak resident memory (MiB) a reader adds, measured in a fresh process around ``code``."""
    script = ("import resource, tfvae.data.files as files\n"
              "from pathlib import Path\nfrom tfvae.errors import InputError\n"
              "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              f"try:\n    {code}\nexcept InputError as e:\n    print('refused:', e)\n"
              "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)\n")
    proc = subprocess.run([sys.executable, "-c", script], env=cli_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    return float(lines[-1]), lines[0]


def idx_header(dims):
    return b"\0\0\x08" + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def gzip_zeros(path, head, count):
    """A gzip file of ``head`` then ``count`` zero bytes, written without holding them."""
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(head)
        for _ in range(count // 2 ** 22):
            f.write(bytes(2 ** 22))


def test_gzipped_idx_claiming_a_billion_images_is_refused_before_reading(tmp_path, tiny_run,
                                                                         capsys):
    path = tmp_path / "lie-images-idx3-ubyte.gz"
    gzip_zeros(path, idx_header((10 ** 9, 28, 28)), 300 * 2 ** 20)
    mb, said = peak_mb(f"files.read_idx_array(Path({str(path)!r}))")
    assert said.startswith("refused") and mb < 50
    one_line_refusal(["evaluate", tiny_run, "--dataset", path], capsys, path)


def test_gzipped_idx_with_more_data_than_its_header_is_read_no_further(tmp_path):
    path = tmp_path / "more-images-idx3-ubyte.gz"
    gzip_zeros(path, idx_header((10, 28, 28)), 300 * 2 ** 20)
    mb, said = peak_mb(f"files.read_idx_array(Path({str(path)!r}))")
    assert said.startswith("refused") and "7840 bytes" in said and mb < 50


def test_a_truncated_idx_header_is_refused(tmp_path, tiny_run, capsys):
    path = tmp_path / "cut-images-idx3-ubyte"
    path.write_bytes(idx_header((10, 28, 28))[:7])
    assert "truncated" in one_line_refusal(["evaluate", tiny_run, "--dataset", path], capsys,
                                           path)


def test_an_npy_claiming_1e12_elements_is_refused_before_allocating(tmp_path, tiny_run, capsys):
    path = tmp_path / "lie.npy"
    header = {"descr": "<f4", "fortran_order": False, "shape": (10 ** 12,)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(bytes(10))
    assert path.stat().st_size < 200
    mb, said = peak_mb(f"files.read_npy(Path({str(path)!r}), '--dataset')")
    assert said.startswith("refused") and mb < 20
    one_line_refusal(["evaluate", tiny_run, "--dataset", path], capsys, path)


def test_an_unused_large_npz_key_costs_nothing(tmp_path):
    path = tmp_path / "images.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("x.npy", "w") as f:
            np.save(f, np.zeros((10, 28, 28), np.uint8))
        with z.open("unused.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "|u1", "fortran_order": False, "shape": (400 * 2 ** 20,)})
            for _ in range(100):
                f.write(bytes(4 * 2 ** 20))
    mb, said = peak_mb(f"print(files.read_npz(Path({str(path)!r}), '--input')['x'].shape)")
    assert said == "(10, 28, 28)" and mb < 30


def test_an_npz_member_claiming_more_than_deflate_allows_is_refused(tmp_path, tiny_run, capsys):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((10, 28, 28), np.uint8))
    data = bytearray(path.read_bytes())
    entry = data.find(b"PK\x01\x02")  # the central directory's uncompressed size
    struct.pack_into("<I", data, entry + 24, 4_000_000_000)
    path.write_bytes(bytes(data))
    line = one_line_refusal(["evaluate", tiny_run, "--dataset", path], capsys, path)
    assert "4,000,000,000" in line


def _code_file(n, d, fingerprint):
    from tfvae.applications.compression import encode_file

    return encode_file(np.zeros((n, d), np.uint32), 1, "uniform", np.zeros(d), np.ones(d),
                       fingerprint)


def test_a_code_file_of_another_model_is_refused_before_decoding(tmp_path, tiny_run, capsys):
    import tracemalloc

    from tfvae.applications.compression import decompress
    from tfvae.errors import InputError
    from tfvae.runs import RunDirectory

    path = tmp_path / "other.tfvae"
    path.write_bytes(_code_file(2_000_000, 4, bytes(32)))  # 1 MB: 2 million images' codes
    model = RunDirectory(tiny_run).load_model()
    tracemalloc.start()
    with pytest.raises(InputError, match="sha256"):
        decompress(model, path.read_bytes())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 * path.stat().st_size
    one_line_refusal(["decompress", tiny_run, "--input", path, "--out", tmp_path / "d.npz"],
                     capsys, "sha256")
    assert not (tmp_path / "d.npz").exists()


def test_a_code_file_is_decoded_a_batch_at_a_time(tiny_run):
    from tfvae.applications.compression import decompress_batches, model_fingerprint
    from tfvae.runs import RunDirectory

    model = RunDirectory(tiny_run).load_model()
    blob = _code_file(2500, 4, model_fingerprint(model))
    sizes = [len(b) for b in decompress_batches(model, blob, batch_size=1000)]
    assert sizes == [1000, 1000, 500]


def test_a_code_file_whose_size_does_not_match_its_header_is_not_read(tmp_path, tiny_run,
                                                                      capsys):
    path = tmp_path / "short.tfvae"
    path.write_bytes(_code_file(100, 4, bytes(32))[:-10])
    line = one_line_refusal(["decompress", tiny_run, "--input", path, "--out",
                             tmp_path / "d.npz"], capsys, path)
    assert "truncated" in line


def _broken_run(tiny_run, tmp_path, name, data):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    if name == "checkpoints/last.keras":
        (run / "model.keras").unlink()
    (run / name).write_bytes(data(run / name))
    return run


def _lambda_keras(path):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)])
    model.save(path)
    return path.read_bytes()


RUN_FILES = {
    "truncated last.keras": ("checkpoints/last.keras", lambda p: p.read_bytes()[:5000]),
    "empty model.keras": ("model.keras", lambda p: b""),
    "random model.keras": ("model.keras", lambda p: np.random.default_rng(0).bytes(5000)),
    "lambda model.keras": ("model.keras", _lambda_keras),
    "garbage state.json": ("state.json", lambda p: b'{"epochs_completed": ['),
    "garbage metrics.csv": ("metrics.csv", lambda p: b"epoch,train_elbo\n1,abc\n"),
    "garbage config.json": ("config.json", lambda p: b"\x89garbage"),
    "config.json of wrong types": ("config.json", lambda p: json.dumps(
        {"model_type": "vae", "model": 3, "data": {}, "train": {}}).encode()),
}


@pytest.mark.parametrize("name, data", RUN_FILES.values(), ids=RUN_FILES.keys())
def test_a_broken_run_file_is_one_line_naming_it(name, data, tiny_run, tmp_path, capsys):
    run = _broken_run(tiny_run, tmp_path, name, data)
    command = (["export", run, "--model-name", "m", "--base-dir", tmp_path / "e"]
               if name.endswith(".csv") or name == "state.json" else ["evaluate", run])
    line = one_line_refusal(command, capsys, run / name)
    assert "File not found" not in line


def test_a_fifo_named_like_an_image_is_left_out_not_read(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.new("L", (8, 8), i * 40).save(folder / f"{i}.png")
    os.mkfifo(folder / "x.png")
    code = ("from pathlib import Path; from tfvae.data.image_folders import read_image_folder; "
            f"print(read_image_folder(Path({str(folder)!r}), '--dataset').shape)")
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "(3, 8, 8, 1)" in proc.stdout, proc.stderr[-2000:]
    assert "x.png" in proc.stderr


def test_a_png_claiming_more_pixels_than_its_bytes_hold_is_left_out_undecoded(tmp_path,
                                                                             monkeypatch):
    from PIL import Image

    import tfvae.data.image_folders as image_folders

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(folder / f"{i}.png")
    # An 8x8 PNG whose header says 12000 x 12000 (its CRC mended): under Pillow's own bomb limit,
    # so Pillow would allocate 432 MB to decode it.
    data = bytearray((folder / "0.png").read_bytes())
    data[16:24] = struct.pack(">II", 12000, 12000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    (folder / "bomb.png").write_bytes(bytes(data))
    decoded = []
    original = image_folders._read_pixels
    monkeypatch.setattr(image_folders, "_read_pixels",
                        lambda img, size: decoded.append(img.size) or original(img, size))
    assert image_folders.read_image_folder(folder, "--dataset").shape == (2, 8, 8, 3)
    assert decoded == [(8, 8), (8, 8)]  # the claim was refused before any decoding


class _Answers:
    """A server on 127.0.0.1 that answers every request with ``body`` (``stream`` times over
    when given, with no Content-Length unless ``declared``)."""

    def __init__(self, body, content_type="text/html", stream=None, declared=False):
        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                if stream is None or declared:
                    self.send_header("Content-Length", str(len(body) * (stream or 1)))
                self.end_headers()
                try:
                    for _ in range(1 if stream is None else stream):
                        self.wfile.write(body)
                except OSError:  # the client stopped reading
                    pass

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("body, content_type, stream, said", [
    (b"<html><body>Welcome to nginx!</body></html>", "text/html", None, "text/html"),
    (json.dumps({"hello": "world"}).encode(), "application/json", None, "without them"),
    (json.dumps([1, 2, 3]).encode(), "application/json", None, "a JSON list"),
    (b"[" * 100_000, "application/json", None, "JSON"),
    (b"a" * 2 ** 20, "application/json", 100, "answered more"),
], ids=["html", "unexpected-json", "json-list", "deeply-nested", "100-MB-streamed"])
def test_client_refuses_a_reply_that_is_not_tf_serving_in_one_line(body, content_type, stream,
                                                                   said, capsys):
    with _Answers(body, content_type, stream) as server:
        line = one_line_refusal(["client", "status", "--url", server.url, "--model-name", "m"],
                                capsys, server.url)
    assert said in line


def test_client_refuses_a_100_mb_reply_from_its_length_alone(capsys):
    with _Answers(b"0" * 2 ** 20, "application/json", 100, declared=True) as server:
        line = one_line_refusal(["client", "metadata", "--url", server.url, "--model-name",
                                 "m"], capsys, server.url)
    assert "104,857,600 bytes" in line
