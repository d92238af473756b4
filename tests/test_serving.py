"""The TF Serving client, CLI and example against a TF Serving test double.

``serving_double.ModelServer`` answers TF Serving's REST and gRPC APIs on 127.0.0.1 by TF
Serving's rules, running the export through the TF1 loader TF Serving uses (test code; production
serving is TF Serving). Every answer is compared with the in-process model's.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import ROOT, run_cli
from serving_double import ModelServer
from tfvae import cli
from tfvae.errors import InputError
from tfvae.evaluation.scores import Threshold
from tfvae.export.metadata import ScoreSettings
from tfvae.export.signatures import serving_functions
from tfvae.export.versions import export_run
from tfvae.export.client import Client, ServingError
from tfvae.runs import RunDirectory, load_run

MODEL = "mnist_vae"
FLAGGED = "mnist_vae_flagged"  # the same run, with an anomaly threshold
K = 100
TOL = 1e-5
PROTOCOLS = ["rest-row", "rest-columnar", "grpc"]


@pytest.fixture(scope="module")
def served(tiny_run, tmp_path_factory):
    base = tmp_path_factory.mktemp("serving")
    path = export_run(tiny_run, MODEL, base_dir=base, num_samples=K)
    model, config = load_run(tiny_run)
    x = RunDirectory(tiny_run).load_dataset(test_examples=3).x_test
    seeds = np.array([3, 11, 2**35], np.int64)
    z = np.random.default_rng(2).standard_normal((3, model.latent_dim)).astype(np.float32)
    functions = serving_functions(model, K)
    ref = {
        "encode": functions["encode"](tf.constant(x)),
        "decode": functions["decode"](tf.constant(z)),
        "sample": functions["sample"](tf.constant(seeds)),
        "reconstruct": functions["reconstruct"](tf.constant(x)),
        "log_likelihood": functions["log_likelihood"](tf.constant(x), tf.constant(seeds)),
        "score": functions["score"](tf.constant(x), tf.constant(seeds)),
    }
    ref = {sig: {k: v.numpy() for k, v in out.items()} for sig, out in ref.items()}
    # A second model: the run with an anomaly threshold, whose score flags anomalies. The
    # threshold (4 draws) lies between the rows' scores for seed 0.
    scores = serving_functions(model, K, score=ScoreSettings(4))["score"](
        tf.constant(x), tf.zeros([3], tf.int64))["score"].numpy()
    threshold = float(np.median(scores))
    flagged = tmp_path_factory.mktemp("flagged") / "run"
    shutil.copytree(tiny_run, flagged, ignore=shutil.ignore_patterns(".tfvae.lock"))
    RunDirectory(flagged).write_threshold(Threshold(threshold, 0.01, "elbo", 4, 0, 200))
    export_run(flagged, FLAGGED, base_dir=base, num_samples=K)
    server = ModelServer({MODEL: base / MODEL, FLAGGED: base / FLAGGED}).start()
    yield {"server": server, "path": path, "model": model, "x": x, "seeds": seeds, "z": z,
           "ref": ref, "threshold": threshold, "flagged_scores": scores}
    server.stop()


def url(served, protocol):
    return served["server"].grpc_url if protocol == "grpc" else served["server"].rest_url


def fmt(protocol):
    return "columnar" if protocol == "rest-columnar" else "row"


def close(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_signature_matches_in_process(served, protocol):
    ref, f = served["ref"], fmt(protocol)
    with Client(url(served, protocol), MODEL) as client:
        for name, out in [("encode", client.encode(served["x"], format=f)),
                          ("serving_default", client.predict({"x": served["x"]}, format=f)),
                          ("sample", client.sample(served["seeds"], format=f)),
                          ("reconstruct", client.reconstruct(served["x"], format=f)),
                          ("log_likelihood", client.log_likelihood(served["x"], served["seeds"],
                                                                   format=f)),
                          ("score", client.score(served["x"], served["seeds"], format=f))]:
            want = ref["encode" if name == "serving_default" else name]
            assert sorted(out) == sorted(want), name
            for key in want:
                close(out[key], want[key])
        close(client.decode(served["z"], format=f), ref["decode"]["x_mean"])


@pytest.mark.parametrize("protocol", ["rest-row", "grpc"])
def test_status_and_metadata(served, protocol):
    with Client(url(served, protocol), MODEL) as client:
        assert client.status() == [{"version": 1, "state": "AVAILABLE", "error_code": "OK",
                                    "error_message": ""}]
        meta = client.metadata()
        assert meta["version"] == 1
        sigs = meta["signatures"]
        assert set(sigs) == {"encode", "decode", "sample", "reconstruct", "log_likelihood",
                             "score", "serving_default"}
        assert sigs["encode"]["inputs"] == {"x": {"dtype": "DT_FLOAT", "shape": [-1, 28, 28, 1]}}
        assert sigs["serving_default"]["inputs"] == sigs["encode"]["inputs"]
        assert sigs["sample"]["inputs"] == {"seed": {"dtype": "DT_INT64", "shape": [-1]}}
        assert sigs["decode"]["inputs"] == {"z": {"dtype": "DT_FLOAT", "shape": [-1, 4]}}
        assert set(sigs["log_likelihood"]["inputs"]) == {"x", "seed"}
        assert set(sigs["log_likelihood"]["outputs"]) == {"elbo", "log_px"}
        assert set(sigs["score"]["inputs"]) == {"x", "seed"}
        assert sigs["score"]["outputs"] == {"score": {"dtype": "DT_FLOAT", "shape": [-1]}}
    with Client(url(served, protocol), MODEL, version=1) as client:
        close(client.encode(served["x"])["z_mean"], served["ref"]["encode"]["z_mean"])
    with Client(url(served, protocol), MODEL, version=2) as client:
        with pytest.raises(ServingError, match="Could not find version 2 of model mnist_vae"):
            client.status()


def _nan(x):
    x = x.copy()
    x[1, 5, 5, 0] = np.nan
    return x


# (request, gRPC code, REST status, message): None where the request has no form over that
# API; a message per protocol where TF Serving words it differently.
BAD_REQUESTS = [
    (lambda c, s, f: c.predict({"x": s["x"].astype(np.float64)}, "encode", format=f),
     "INVALID_ARGUMENT", None, "Expects arg[0] to be float but double is provided"),
    (lambda c, s, f: c.predict({"seed": s["seeds"].astype(np.int32)}, "sample", format=f),
     "INVALID_ARGUMENT", None, "Expects arg[0] to be int64 but int32 is provided"),
    (lambda c, s, f: c.predict({"seed": np.array([1.5])}, "sample", format=f),
     None, 400, "JSON Value: 1.5 Type: Number is not of expected type: int64"),
    (lambda c, s, f: c.predict({"x": np.array([[["a"]]])}, "encode", format=f),
     None, 400, 'JSON Value: "a" Type: String is not of expected type: float'),
    (lambda c, s, f: c.encode(s["x"].reshape(3, 784), format=f), "INVALID_ARGUMENT", 400,
     "x: expected float32 images of shape [batch, 28, 28, 1], got shape] [3 784]"),
    (lambda c, s, f: c.encode(_nan(s["x"]), format=f), "INVALID_ARGUMENT", 400,
     "x: expected finite pixel values, got NaN or infinity"),
    (lambda c, s, f: c.reconstruct(np.where(s["x"] > 0, 2.0, 0.0), format=f),
     "INVALID_ARGUMENT", 400, "x: expected pixel values in [0, 1] for a Bernoulli model"),
    (lambda c, s, f: c.decode(s["z"][:, :2], format=f), "INVALID_ARGUMENT", 400,
     "z: expected float32 latents of shape [batch, 4], got shape] [3 2]"),
    (lambda c, s, f: c.predict({"x": s["x"]}, "nope", format=f), "FAILED_PRECONDITION", 400,
     {"grpc": 'Serving signature key "nope" not found.',
      "rest-row": 'Serving signature name: "nope" not found in signature def',
      "rest-columnar": 'Serving signature name: "nope" not found in signature def'}),
    (lambda c, s, f: c.predict({"x": s["x"]}, "log_likelihood", format=f),
     "INVALID_ARGUMENT", 400,
     {"grpc": "input size does not match signature: 1!=2 len({x}) != len({seed,x}). "
              "Sent extra: {}. Missing but required: {seed}.",
      "rest-row": "instances is a plain list, but expecting list of objects as multiple input "
                  "tensors required as per tensorinfo_map",
      "rest-columnar": "Missing named input: seed in 'inputs' object."}),
    (lambda c, s, f: Client(c.url, MODEL, version=9).encode(s["x"], format=f), "NOT_FOUND", 404,
     "Servable not found for request: Specific(mnist_vae, 9)"),
    (lambda c, s, f: Client(c.url, "other").encode(s["x"], format=f), "NOT_FOUND", 404,
     "Servable not found for request: Latest(other)"),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bad_requests_are_refused_and_the_next_is_answered(served, protocol):
    grpc = protocol == "grpc"
    tried = 0
    with Client(url(served, protocol), MODEL) as client:
        for request, code, http, message in BAD_REQUESTS:
            if (code if grpc else http) is None:
                continue
            if isinstance(message, dict):
                message = message[protocol]
            with pytest.raises(ServingError) as error:
                request(client, served, fmt(protocol))
            assert error.value.code == (code if grpc else f"HTTP {http}")
            assert message in error.value.message
            tried += 1
            close(client.encode(served["x"])["z_mean"], served["ref"]["encode"]["z_mean"])
    assert tried == 10


def _rest(served, path, body=None):
    request = urllib.request.Request(
        served["server"].rest_url + path, method="GET" if body is None else "POST",
        data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_rest_row_and_columnar_wire_formats(served):
    ref, x, seeds = served["ref"], served["x"], served["seeds"]
    predict = f"/v1/models/{MODEL}:predict"
    # Row format, several outputs: one object per instance.
    status, reply = _rest(served, predict, {"signature_name": "sample",
                                            "instances": seeds.tolist()})
    assert status == 200 and list(reply) == ["predictions"]
    assert [sorted(row) for row in reply["predictions"]] == [["x_mean", "z"]] * 3
    close(np.array([row["z"] for row in reply["predictions"]], np.float32), ref["sample"]["z"])
    # Row format, several inputs: objects in, one output's values straight out when it is alone.
    instances = [{"x": x[i].tolist(), "seed": int(seeds[i])} for i in range(3)]
    status, reply = _rest(served, f"/v1/models/{MODEL}/versions/1:predict",
                          {"signature_name": "log_likelihood", "instances": instances})
    close(np.array([row["log_px"] for row in reply["predictions"]], np.float32),
          ref["log_likelihood"]["log_px"])
    status, reply = _rest(served, predict, {"signature_name": "decode",
                                            "instances": served["z"].tolist()})
    close(np.array(reply["predictions"], np.float32), ref["decode"]["x_mean"])
    # Columnar format, default signature (encode): named outputs in one object.
    status, reply = _rest(served, predict, {"inputs": x.tolist()})
    assert status == 200 and sorted(reply["outputs"]) == ["z_mean", "z_stddev"]
    close(np.array(reply["outputs"]["z_mean"], np.float32), ref["encode"]["z_mean"])
    # Errors are {"error": message} with TF Serving's HTTP status.
    assert _rest(served, predict, {"instances": []}) == (
        400, {"error": "JSON Value: ... No values in 'instances' array"})
    assert _rest(served, predict, {"signature_name": "encode"}) == (
        400, {"error": "Missing 'inputs' or 'instances' key"})
    assert _rest(served, f"/v1/models/{MODEL}/versions/7") == (
        404, {"error": f"Could not find version 7 of model {MODEL}"})
    status, reply = _rest(served, f"/v1/models/{MODEL}/metadata")
    assert status == 200 and reply["model_spec"]["version"] == "1"
    assert reply["metadata"]["signature_def"]["@type"] == (
        "type.googleapis.com/tensorflow.serving.SignatureDefMap")


def test_concurrent_requests(served):
    results, errors = {}, []

    def one(i, protocol):
        try:
            with Client(url(served, protocol), MODEL) as client:
                results[i, protocol] = client.encode(served["x"][i % 3:i % 3 + 1])["z_mean"][0]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i, p)) for i in range(6)
               for p in ("rest-row", "grpc")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(results) == 12
    for (i, _), z_mean in results.items():
        close(z_mean, served["ref"]["encode"]["z_mean"][i % 3])


def test_client_checks_its_arguments():
    for bad in ["localhost:8501", "ftp://host:1", "http://", "http://host:port"]:
        with pytest.raises(InputError, match="^url: expected http://HOST:PORT"):
            Client(bad, MODEL)
    with pytest.raises(InputError, match="^version: expected an integer >= 1"):
        Client("http://127.0.0.1:1", MODEL, version=0)
    client = Client("http://127.0.0.1:1", MODEL)
    for seeds in [[1.5], [], [[1, 2]], ["a"]]:
        with pytest.raises(InputError, match="seeds: expected a non-empty list of int64"):
            client.sample(seeds)
    with pytest.raises(InputError, match="format: expected one of"):
        client.predict({"x": [0.0]}, format="csv")
    with pytest.raises(ServingError) as error:  # nothing listens on port 1
        client.status()
    assert error.value.code == "UNAVAILABLE"


def _png(path, pixels):
    Image.fromarray(pixels).save(path)
    return path


def test_cli_client(served, tmp_path, capsys):
    grey = np.random.default_rng(3).integers(0, 256, (28, 28), dtype=np.uint8)
    image = _png(tmp_path / "digit.png", grey)
    want = serving_functions(served["model"])["encode"](
        tf.constant(grey[None, :, :, None] / 255, tf.float32))
    server = served["server"]

    # The installed command, over gRPC.
    result = run_cli("client", "encode", "--url", server.grpc_url, "--model-name", MODEL, image)
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["image"] == str(image) and line["index"] == 0
    np.testing.assert_allclose(line["z_mean"], want["z_mean"].numpy()[0], atol=TOL)
    np.testing.assert_allclose(line["z_stddev"], want["z_stddev"].numpy()[0], atol=TOL)

    # The rest in process, over REST.
    rest = ["--url", server.rest_url, "--model-name", MODEL]
    assert cli.main(["client", "sample", *rest, "--seeds", "3", "11", "--out",
                     str(tmp_path / "s.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    z = np.array([json.loads(text)["z"] for text in lines[:2]], np.float32)
    close(z, served["ref"]["sample"]["z"][:2])
    assert (tmp_path / "s.png").is_file()
    np.save(tmp_path / "z.npy", served["z"])
    assert cli.main(["client", "decode", *rest, "--z-file", str(tmp_path / "z.npy"),
                     "--out", str(tmp_path / "d.png")]) == 0
    assert "3 images written" in capsys.readouterr().out
    assert cli.main(["client", "status", *rest, "--version", "1"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["state"] == "AVAILABLE"

    # The server refuses: status 1 and its message; bad arguments: status 2.
    assert cli.main(["client", "decode", *rest, "--z", "0.5,1"]) == 1
    err = capsys.readouterr().err
    assert "tfvae client decode: the server refused the request: HTTP 400" in err
    assert "z: expected float32 latents of shape [batch, 4]" in err
    assert cli.main(["client", "encode", "--url", "localhost", "--model-name", MODEL,
                     str(image)]) == 2
    assert "--url: expected http://HOST:PORT" in capsys.readouterr().err
    assert cli.main(["client", "encode", *rest, str(tmp_path / "none.png")]) == 2
    assert "IMAGE: expected an existing" in capsys.readouterr().err


def test_models_config_parses_for_tf_serving():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse((ROOT / "serving" / "models.config").read_text(),
                               model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == (
        MODEL, f"/models/{MODEL}", "tensorflow")
    assert model.model_version_policy.latest.num_versions == 1


def test_readme_shows_what_a_refused_request_gets(served):
    # serving/README.md's curl example: pixels of 2.0 for the Bernoulli model -> HTTP 400.
    readme = (ROOT / "serving" / "README.md").read_text()
    shown = json.loads(next(line for line in readme.splitlines()
                            if line.startswith('{"error": "assertion failed: [x:')))["error"]
    body = json.dumps({"signature_name": "encode", "instances": [[[[2.0]] * 28] * 28]}).encode()
    request = urllib.request.Request(f"{served['server'].rest_url}/v1/models/{MODEL}:predict",
                                     data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 400
    error = json.loads(refused.value.read())["error"]
    # The message up to the graph's node names, which differ between exports.
    assert error.split("\n")[0] == shown.split("\n")[0]
    assert shown.startswith("assertion failed: [x: expected pixel values in [0, 1] for a "
                            "Bernoulli model")


def test_batching_and_monitoring_configs_parse_for_tf_serving():
    from google.protobuf import text_format
    from tf_serving_protos import BatchingParameters, MonitoringConfig

    batching = text_format.Parse((ROOT / "serving" / "batching.config").read_text(),
                                 BatchingParameters())
    for field in ("max_batch_size", "batch_timeout_micros", "num_batch_threads",
                  "max_enqueued_batches"):
        assert batching.HasField(field), field  # unset, TF Serving would use its own default
    sizes = list(batching.allowed_batch_sizes)
    # TF Serving refuses to start unless the sizes increase and the last is max_batch_size.
    assert sizes and sizes == sorted(set(sizes)) and sizes[0] >= 1
    assert sizes[-1] == batching.max_batch_size.value
    assert batching.num_batch_threads.value >= 1 and batching.max_enqueued_batches.value >= 1
    assert 0 <= batching.batch_timeout_micros.value <= 100_000
    # The largest batch the benchmark measures, and the largest request a client may send.
    assert batching.max_batch_size.value == 256

    monitoring = text_format.Parse((ROOT / "serving" / "monitoring.config").read_text(),
                                   MonitoringConfig())
    assert monitoring.prometheus_config.enable
    assert monitoring.prometheus_config.path == "/monitoring/prometheus/metrics"

    # The README's docker line passes both files where it mounts them.
    readme = (ROOT / "serving" / "README.md").read_text()
    docker = readme[readme.index("docker run"):]
    docker = docker[:docker.index("```")]
    assert 'source="$PWD/serving",target=/config' in docker
    for flag in ("--model_config_file=/config/models.config", "--enable_batching",
                 "--batching_parameters_file=/config/batching.config",
                 "--monitoring_config_file=/config/monitoring.config"):
        assert flag in docker, flag


RUN_WITHOUT_TFVAE = """
import runpy, sys
for name in ("tfvae", "tensorflow_probability", "keras", "tf_keras"):
    sys.modules[name] = None  # import of any of these now fails
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_example_uses_the_export_with_tensorflow_alone(served, tmp_path):
    grey = np.random.default_rng(4).integers(0, 256, (28, 28), dtype=np.uint8)
    image = _png(tmp_path / "digit.png", grey)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_TFVAE, str(ROOT / "serving" / "examples" /
                                                      "use_export.py"),
         str(served["path"]), "--image", str(image), "--seeds", "3", "11"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert out["model"]["dataset"] == "mnist" and out["model"]["latent_dim"] == 4
    want = serving_functions(served["model"])["encode"](
        tf.constant(grey[None, :, :, None] / 255, tf.float32))
    np.testing.assert_allclose(out["encode"]["z_mean"], want["z_mean"].numpy(), atol=TOL)
    np.testing.assert_allclose(out["sample"]["z"], served["ref"]["sample"]["z"][:2], atol=TOL)
    assert np.isfinite(out["log_likelihood"]["log_px"][0])
    # The score of the image for the first seed; no threshold in this export, so no flag.
    assert out["model"]["score_num_samples"] == 16
    assert sorted(out["score"]) == ["score", "threshold"] and out["score"]["threshold"] is None
    want = serving_functions(served["model"])["score"](
        tf.constant(grey[None, :, :, None] / 255, tf.float32), tf.constant([3], tf.int64))
    np.testing.assert_allclose(out["score"]["score"], want["score"].numpy(), rtol=TOL)


def test_cli_client_says_when_the_server_cannot_be_reached_or_does_not_answer(capsys):
    import socket
    import time

    assert cli.main(["client", "status", "--url", "http://127.0.0.1:1", "--model-name",
                     MODEL]) == 1
    assert "the server cannot be reached" in capsys.readouterr().err
    # A server that takes the connection and never answers: --timeout bounds the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        start = time.monotonic()
        assert cli.main(["client", "status", "--url", f"http://127.0.0.1:{port}",
                         "--model-name", MODEL, "--timeout", "1"]) == 1
        assert time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert "the server did not answer in time" in err and "1 s" in err


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_score_flags_anomalies_above_the_exports_threshold(served, protocol):
    f = fmt(protocol)
    with Client(url(served, protocol), FLAGGED) as client:
        sigs = client.metadata()["signatures"]
        assert sigs["score"]["outputs"] == {"score": {"dtype": "DT_FLOAT", "shape": [-1]},
                                            "anomaly": {"dtype": "DT_INT64", "shape": [-1]}}
        out = client.score(served["x"], format=f)  # one seed, 0, for every row
        close(out["score"], served["flagged_scores"])
        assert out["anomaly"].dtype == np.int64
        np.testing.assert_array_equal(out["anomaly"], out["score"] > served["threshold"])
        assert sorted(out["anomaly"].tolist()) == [0, 0, 1]
        # Per-row seeds: row i's score is that of seed i alone.
        again = client.score(served["x"][1:], [5, 6], format=f)
        want = serving_functions(served["model"], K, score=ScoreSettings(4))["score"](
            tf.constant(served["x"][1:]), tf.constant([5, 6], tf.int64))["score"].numpy()
        close(again["score"], want)
        # A NaN row: the whole request is refused, naming x; the next is answered.
        with pytest.raises(ServingError) as error:
            client.score(_nan(served["x"]), format=f)
        assert error.value.code == ("INVALID_ARGUMENT" if protocol == "grpc" else "HTTP 400")
        assert "x: expected finite pixel values, got NaN or infinity" in error.value.message
        close(client.score(served["x"], format=f)["score"], served["flagged_scores"])
    with pytest.raises(InputError, match="seeds: expected a non-empty list of int64"):
        Client(url(served, protocol), FLAGGED).score(served["x"], [1.5, 2.5, 3.5])


def test_cli_client_score(served, tmp_path, capsys):
    server = served["server"]
    x = served["x"]
    np.save(tmp_path / "rows.npy", x)
    np.savez(tmp_path / "rows.npz", x=(x[:2] * 255).round().astype(np.uint8))
    rest = ["--url", server.rest_url, "--model-name", FLAGGED]

    # Over gRPC, the installed command: one JSON line per example, with the anomaly flag.
    result = run_cli("client", "score", "--url", server.grpc_url, "--model-name", FLAGGED,
                     tmp_path / "rows.npy")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(text) for text in result.stdout.splitlines()]
    assert [(line["input"], line["index"]) for line in lines] == [
        (str(tmp_path / "rows.npy"), i) for i in range(3)]
    close(np.array([line["score"] for line in lines], np.float32), served["flagged_scores"])
    assert [line["anomaly"] for line in lines] == [
        int(line["score"] > served["threshold"]) for line in lines]

    # Over REST in process, in requests of 2 rows, to a CSV as tfvae score writes it; grey
    # levels 0..255 are scaled as images are.
    out = tmp_path / "scores.csv"
    assert cli.main(["client", "score", *rest, "--batch-size", "2", "--seed", "9",
                     str(tmp_path / "rows.npy"), str(tmp_path / "rows.npz"), "--out",
                     str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1].startswith(f"tfvae client score: 5 scores written to {out}")
    rows = [line.split(",") for line in out.read_text().splitlines()]
    assert rows[0] == ["input", "row", "score", "anomaly"]
    assert [(r[0], int(r[1])) for r in rows[1:]] == [
        (str(tmp_path / "rows.npy"), i) for i in range(3)] + [
        (str(tmp_path / "rows.npz"), i) for i in range(2)]
    scores = np.array([float(r[2]) for r in rows[1:]], np.float32)
    functions = serving_functions(served["model"], K,
                                  score=ScoreSettings(4, served["threshold"]))
    grey = (x[:2] * 255).round() / 255
    want = functions["score"](tf.constant(np.concatenate([x, grey]), tf.float32),
                              tf.fill([5], tf.constant(9, tf.int64)))
    close(scores, want["score"].numpy())
    assert [int(r[3]) for r in rows[1:]] == want["anomaly"].numpy().tolist()
    assert cli.main(["client", "score", *rest, str(tmp_path / "rows.npy"), "--out",
                     str(out)]) == 2
    assert "--out: expected a file that does not exist yet" in capsys.readouterr().err

    # The model without a threshold: scores alone.
    assert cli.main(["client", "score", "--url", server.rest_url, "--model-name", MODEL,
                     str(tmp_path / "rows.npy"), "--seed", "3"]) == 0
    lines = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert all(sorted(line) == ["index", "input", "score"] for line in lines)
    want = serving_functions(served["model"], K)["score"](tf.constant(x),
                                                         tf.fill([3], tf.constant(3, tf.int64)))
    close(np.array([line["score"] for line in lines], np.float32), want["score"].numpy())

    # Examples of another shape: refused before any request; a NaN: refused by the server.
    np.save(tmp_path / "wide.npy", np.zeros((2, 30), np.float32))
    assert cli.main(["client", "score", *rest, str(tmp_path / "wide.npy")]) == 2
    assert "INPUT: expected examples of shape (28, 28, 1)" in capsys.readouterr().err
    np.save(tmp_path / "nan.npy", _nan(x))
    assert cli.main(["client", "score", *rest, str(tmp_path / "nan.npy")]) == 1
    err = capsys.readouterr().err
    assert "tfvae client score: the server refused the request: HTTP 400" in err
    assert "x: expected finite pixel values" in err
