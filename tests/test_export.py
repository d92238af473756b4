"""SavedModel export: layout and versions, and the same numbers through every loader.

Loaders: ``tf.saved_model.load`` in a process where tfvae (and TFP and Keras) cannot be imported,
the TF1 loader running SignatureDefs by tensor names (TF Serving's SavedModelBundle path), and a
C program against the TF C API. Each is compared with the in-process model's outputs.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from tfvae import VAE, cli, noise
from tfvae.errors import InputError
from tfvae.export import export_model
from tfvae.export.metadata import read_metadata
from tfvae.export.metadata import ScoreSettings
from tfvae.export.signatures import (SAMPLE_STREAM, SIGNATURES, input_specs, model_signatures,
                                     serving_functions)
from tfvae.export.versions import export_run, next_version
from tfvae.runs import RunDirectory, load_run
from tfvae.export.warmup import warmup_records

MODEL = "mnist_vae"
K = 200  # importance samples of log_likelihood in these exports
INPUTS = {"encode": ["x"], "decode": ["z"], "sample": ["seed"], "reconstruct": ["x"],
          "log_likelihood": ["x", "seed"], "score": ["x", "seed"]}
# The run has no anomaly threshold: score without anomaly (see test_score_flags_anomalies...).
OUTPUTS = {"encode": ["z_mean", "z_stddev"], "decode": ["x_mean"], "sample": ["z", "x_mean"],
           "reconstruct": ["x_mean", "z_mean"], "log_likelihood": ["elbo", "log_px"],
           "score": ["score"]}
TOL = 1e-5


def reference(model, inputs, num_samples=K):
    """Every signature's outputs computed in process from the Keras model: "sig/output" -> array."""
    functions = serving_functions(model, num_samples)
    out = {}
    for sig, names in INPUTS.items():
        for key, value in functions[sig](*[tf.constant(inputs[n]) for n in names]).items():
            out[f"{sig}/{key}"] = value.numpy()
    return out


def assert_matches(got, want, tol=TOL):
    assert sorted(got) == sorted(want)
    for key in want:
        assert got[key].shape == want[key].shape, key
        np.testing.assert_allclose(got[key], want[key], rtol=tol, atol=tol, err_msg=key)


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    path = export_run(tiny_run, MODEL, base_dir=base, num_samples=K)
    model, config = load_run(tiny_run)
    x = RunDirectory(tiny_run).load_dataset(test_examples=3).x_test
    inputs = {"x": x, "seed": np.array([0, 7, 2**40 + 3], np.int64),
              "z": np.random.default_rng(0).standard_normal((3, model.latent_dim), np.float32)}
    return {"path": path, "base": base, "model": model, "inputs": inputs,
            "reference": reference(model, inputs)}


def test_layout_and_metadata(exported, tiny_run):
    path = exported["path"]
    assert path == exported["base"] / MODEL / "1"
    # Only the version itself: the temporary directory it was written in is gone.
    assert sorted(p.name for p in (exported["base"] / MODEL).iterdir()) == ["1"]
    assert (path / "saved_model.pb").is_file() and (path / "variables").is_dir()
    meta = read_metadata(path)
    assert meta == json.loads((path / "assets" / "tfvae.json").read_text())
    assert meta["dataset"] == "mnist" and meta["binarization"] == "dynamic"
    assert meta["image_shape"] == [28, 28, 1] and meta["latent_dim"] == 4
    assert meta["likelihood"] == "bernoulli" and meta["log_likelihood_num_samples"] == K
    last = RunDirectory(tiny_run).read_metrics()[-1]
    assert meta["test_elbo"] == pytest.approx(last["test_elbo"]) and meta["epochs"] == 2
    assert meta["versions"]["tensorflow"] == tf.__version__
    assert meta["model_name"] == MODEL and meta["version"] == 1


def test_signature_defs_have_named_batched_inputs(exported):
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((exported["path"] / "saved_model.pb").read_bytes())
    signatures = saved.meta_graphs[0].signature_def
    # impute is a signature of models trained with missing values only.
    assert set(SIGNATURES) - {"impute"} | {"serving_default"} <= set(signatures)
    assert "impute" not in signatures
    for sig in (*model_signatures(exported["model"]), "serving_default"):
        name = "encode" if sig == "serving_default" else sig
        signature = signatures[sig]
        assert signature.method_name == "tensorflow/serving/predict"
        assert sorted(signature.inputs) == sorted(INPUTS[name])
        assert sorted(signature.outputs) == sorted(OUTPUTS[name])
        for info in signature.inputs.values():
            assert info.tensor_shape.dim[0].size == -1  # batched on dimension 0
    x = signatures["encode"].inputs["x"]
    assert x.dtype == tf.float32.as_datatype_enum
    assert [d.size for d in x.tensor_shape.dim] == [-1, 28, 28, 1]
    assert signatures["sample"].inputs["seed"].dtype == tf.int64.as_datatype_enum
    assert [d.size for d in signatures["decode"].inputs["z"].tensor_shape.dim] == [-1, 4]


def test_seeds_fix_each_row(exported):
    model, ref, inputs = exported["model"], exported["reference"], exported["inputs"]
    # sample(seed=s): z from the export's generator for seed s alone, x_mean the decoder's mean.
    for i, seed in enumerate(inputs["seed"]):
        z = noise.CounterSeed(tf.constant([seed]), SAMPLE_STREAM).normals(model.latent_dim)
        np.testing.assert_allclose(ref["sample/z"][i], z.numpy()[0], atol=TOL)
        np.testing.assert_allclose(ref["sample/x_mean"][i], model.decode(z).mean().numpy()[0],
                                   atol=TOL)
    # A row's answer depends on its own input and seed only, not on the rest of the batch.
    functions = serving_functions(model, K)
    alone = functions["log_likelihood"](tf.constant(inputs["x"][1:2]),
                                        tf.constant(inputs["seed"][1:2]))
    np.testing.assert_allclose(alone["log_px"].numpy(), ref["log_likelihood/log_px"][1:2],
                               atol=TOL)
    assert len(np.unique(ref["sample/z"], axis=0)) == 3
    # log p(x) >= ELBO on average; both are finite, negative nats.
    assert np.all(np.isfinite(ref["log_likelihood/log_px"]))
    assert ref["log_likelihood/log_px"].mean() > ref["log_likelihood/elbo"].mean()


LOAD_WITHOUT_TFVAE = """
import json, sys
for name in ("tfvae", "tensorflow_probability", "keras", "tf_keras"):
    sys.modules[name] = None  # import of any of these now fails
import numpy as np
import tensorflow as tf
export_dir, inputs_path, out_path, signatures = sys.argv[1:]
inputs = np.load(inputs_path)
loaded = tf.saved_model.load(export_dir)
out = {}
for sig, names in json.loads(signatures).items():
    result = loaded.signatures[sig](**{n: tf.constant(inputs[n]) for n in names})
    out.update({f"{sig}/{k}": v.numpy() for k, v in result.items()})
np.savez(out_path, **out)
"""


def test_loads_in_a_process_without_tfvae(exported, tmp_path):
    np.savez(tmp_path / "inputs.npz", **exported["inputs"])
    script = tmp_path / "load_export.py"
    script.write_text(LOAD_WITHOUT_TFVAE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, str(script), str(exported["path"]), str(tmp_path / "inputs.npz"),
         str(tmp_path / "out.npz"), json.dumps(INPUTS)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(tmp_path / "out.npz") as got:
        assert_matches(dict(got), exported["reference"])


def tf1_run(session, meta_graph, sig, inputs):
    """Run SignatureDef ``sig`` by its tensor names, as TF Serving does: output alias -> array."""
    signature = meta_graph.signature_def[sig]
    aliases = list(signature.outputs)
    values = session.run([signature.outputs[a].name for a in aliases],
                         {signature.inputs[n].name: value for n, value in inputs.items()})
    return dict(zip(aliases, values))


def test_tf1_loader_runs_signature_defs_by_tensor_names(exported):
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"],
                                                          str(exported["path"]))
        got = {}
        for sig, names in INPUTS.items():
            out = tf1_run(session, meta_graph, sig, {n: exported["inputs"][n] for n in names})
            got.update({f"{sig}/{a}": v for a, v in out.items()})
        assert_matches(got, exported["reference"])

        # Bad input is refused by the graph's own checks; the session answers the next request.
        encode = meta_graph.signature_def["encode"]
        x_name, z_name = encode.inputs["x"].name, encode.outputs["z_mean"].name
        bad = exported["inputs"]["x"].copy()
        bad[0, 3, 3, 0] = np.nan
        with pytest.raises(tf.errors.InvalidArgumentError, match="x: expected finite pixel"):
            session.run(z_name, {x_name: bad})
        good = session.run(z_name, {x_name: exported["inputs"]["x"]})
        np.testing.assert_allclose(good, exported["reference"]["encode/z_mean"], atol=TOL)


def read_warmup(export_dir):
    """The export's warmup file, parsed with TF Serving's own protos: a list of PredictionLog."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(export_dir) / "assets.extra" / "tf_serving_warmup_requests"
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(str(path))]


def test_warmup_requests_replay_through_tf1_loader(exported):
    logs = read_warmup(exported["path"])
    requests = [log.predict_log.request for log in logs]
    assert all(log.WhichOneof("log_type") == "predict_log" for log in logs)
    assert [r.model_spec.signature_name for r in requests] == [
        *model_signatures(exported["model"]), "serving_default"]
    assert {r.model_spec.name for r in requests} == {MODEL}
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        # As TF Serving loads a version: the TF1 loader, then every warmup request replayed.
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"],
                                                          str(exported["path"]))
        predict = {k for k, v in meta_graph.signature_def.items()
                   if v.method_name == "tensorflow/serving/predict"}  # not __saved_model_init_op
        assert {r.model_spec.signature_name for r in requests} == predict
        for request in requests:
            signature = meta_graph.signature_def[request.model_spec.signature_name]
            assert sorted(request.inputs) == sorted(signature.inputs)
            inputs = {}
            for name, tensor in request.inputs.items():
                info = signature.inputs[name]
                assert tensor.dtype == info.dtype, name
                shape = [d.size for d in tensor.tensor_shape.dim]
                assert shape == [1] + [d.size for d in info.tensor_shape.dim[1:]], name
                inputs[name] = tf.make_ndarray(tensor)
            out = tf1_run(session, meta_graph, request.model_spec.signature_name, inputs)
            assert sorted(out) == sorted(signature.outputs)
            for alias, value in out.items():
                want = [1] + [d.size for d in signature.outputs[alias].tensor_shape.dim[1:]]
                assert list(value.shape) == want, alias
                assert np.all(np.isfinite(value)), alias
        # The requests are valid input: pixels of 0.5, seeds of 0.
        encode = next(r for r in requests if r.model_spec.signature_name == "encode")
        np.testing.assert_array_equal(tf.make_ndarray(encode.inputs["x"]),
                                      np.full((1, 28, 28, 1), 0.5, np.float32))
        sample = next(r for r in requests if r.model_spec.signature_name == "sample")
        np.testing.assert_array_equal(tf.make_ndarray(sample.inputs["seed"]), [0])


def test_warmup_follows_the_signatures_inputs(tmp_path, monkeypatch):
    from tfvae.models import Autoencoder

    # The export needs no tensorflow-serving-api: with it unimportable the warmup is written.
    for name in [m for m in sys.modules if m.split(".")[0] == "tensorflow_serving"] + \
            ["tensorflow_serving"]:
        monkeypatch.setitem(sys.modules, name, None)
    model = Autoencoder(image_shape=(4, 4, 1), latent_dim=2, hidden=8, seed=0)
    path = export_model(model, tmp_path / "ae" / "1", num_samples=5)
    # A signature with one more input (a conditional model's label) gets it without change.
    specs = input_specs(model)
    specs["decode"] = [*specs["decode"], tf.TensorSpec([None], tf.int64, name="label")]
    records = warmup_records({**specs, "serving_default": specs["encode"]}, "ae")
    monkeypatch.undo()

    from tensorflow_serving.apis import prediction_log_pb2

    # The autoencoder has no log_likelihood signature, so no request for it.
    names = ["encode", "decode", "sample", "reconstruct", "serving_default"]
    assert [log.predict_log.request.model_spec.signature_name
            for log in read_warmup(path)] == names
    requests = [prediction_log_pb2.PredictionLog.FromString(r).predict_log.request
                for r in records]
    assert [r.model_spec.signature_name for r in requests] == names
    decode = requests[1]
    assert sorted(decode.inputs) == ["label", "z"]
    label = tf.make_ndarray(decode.inputs["label"])
    assert label.dtype == np.int64 and label.tolist() == [0]
    np.testing.assert_array_equal(tf.make_ndarray(decode.inputs["z"]),
                                  np.full((1, 2), 0.5, np.float32))


def _one_nan(x):
    x = x.copy()
    x[1, 2, 3, 0] = np.nan
    return x


@pytest.mark.parametrize("sig, change, message", [
    ("encode", lambda i: {"x": np.where(i["x"] > 0, np.nan, 0).astype(np.float32)},
     "x: expected finite pixel values"),
    ("encode", lambda i: {"x": np.full_like(i["x"], np.inf)}, "x: expected finite pixel values"),
    ("reconstruct", lambda i: {"x": i["x"] * 2}, r"x: expected pixel values in \[0, 1\]"),
    ("encode", lambda i: {"x": i["x"] - 0.5}, r"in \[0, 1\] for a Bernoulli model"),
    ("decode", lambda i: {"z": np.full_like(i["z"], np.nan)}, "z: expected finite values"),
    ("log_likelihood", lambda i: {"x": i["x"], "seed": i["seed"][:2]},
     "seed: expected one seed per image of x"),
    ("score", lambda i: {"x": _one_nan(i["x"]), "seed": i["seed"]},
     "x: expected finite pixel values"),
    ("score", lambda i: {"x": i["x"] + 0.75, "seed": i["seed"]},
     r"x: expected pixel values in \[0, 1\] for a Bernoulli model"),
    ("score", lambda i: {"x": i["x"], "seed": i["seed"][:1]},
     "seed: expected one seed per image of x"),
])
def test_bad_input_gives_invalid_argument(exported, sig, change, message):
    loaded = tf.saved_model.load(str(exported["path"]))
    fn = loaded.signatures[sig]
    bad = change(exported["inputs"])
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        fn(**{k: tf.constant(v) for k, v in bad.items()})
    # The next good request is answered.
    good = fn(**{n: tf.constant(exported["inputs"][n]) for n in INPUTS[sig]})
    key = OUTPUTS[sig][0]
    np.testing.assert_allclose(good[key].numpy(), exported["reference"][f"{sig}/{key}"],
                               rtol=TOL, atol=TOL)


def test_gaussian_model_accepts_any_finite_pixels(tmp_path):
    model = VAE(image_shape=(4, 5, 1), latent_dim=2, hidden=8, likelihood="gaussian", seed=1)
    path = export_model(model, tmp_path / "faces" / "1", num_samples=20)
    meta = read_metadata(path)
    assert meta["likelihood"] == "gaussian" and meta["image_shape"] == [4, 5, 1]
    assert meta["dataset"] is None and meta["log_likelihood_num_samples"] == 20
    loaded = tf.saved_model.load(str(path))
    x = np.full((2, 4, 5, 1), 2.0, np.float32)  # outside [0, 1]: fine for a Gaussian
    got = loaded.signatures["reconstruct"](x=tf.constant(x))
    want = serving_functions(model, 20)["reconstruct"](tf.constant(x))
    np.testing.assert_allclose(got["z_mean"].numpy(), want["z_mean"].numpy(), atol=TOL)
    with pytest.raises(tf.errors.InvalidArgumentError, match="x: expected finite pixel"):
        loaded.signatures["encode"](x=tf.constant(np.full_like(x, np.nan)))


def test_each_signature_is_traced_once_and_its_variables_are_saved(tmp_path, monkeypatch):
    model = VAE(image_shape=(4, 4, 1), latent_dim=2, hidden=8, seed=0)
    save = tf.saved_model.save
    saved = []

    def watching_save(obj, *args, **kwargs):
        saved.append(obj)
        return save(obj, *args, **kwargs)

    monkeypatch.setattr(tf.saved_model, "save", watching_save)
    path = export_model(model, tmp_path / "m" / "1", num_samples=5)
    [module] = saved
    functions = {name: fn for name, fn in vars(module).items()
                 if isinstance(fn, tf.types.experimental.PolymorphicFunction)}
    assert set(functions) >= set(model_signatures(model))
    # A trace before the save would be traced again inside it: the save context is in the key.
    assert {name: fn.experimental_get_tracing_count() for name, fn in functions.items()} == \
        {name: 1 for name in functions}
    # The weights the graphs capture are tracked and saved, and nothing that is not the model's.
    tracked = {v.ref() for v in module.model_variables}
    assert ({v.value.ref() for v in model.trainable_weights} <= tracked
            <= {v.value.ref() for v in model.weights})
    loaded = tf.saved_model.load(str(path))
    assert len(loaded.model_variables) == len(tracked)


def test_written_beside_and_renamed_into_place(tmp_path, monkeypatch):
    model = VAE(image_shape=(4, 4, 1), latent_dim=2, hidden=8, seed=0)
    target = tmp_path / "m" / "3"
    save = tf.saved_model.save
    seen = []

    def watching_save(obj, export_dir, *args, **kwargs):
        # While the SavedModel is being written, no version directory exists; the directory
        # being written is hidden and not an integer, so TF Serving ignores it.
        seen.append((Path(export_dir), target.exists()))
        return save(obj, export_dir, *args, **kwargs)

    monkeypatch.setattr(tf.saved_model, "save", watching_save)
    assert export_model(model, target, num_samples=5) == target
    (written, existed), = seen
    assert not existed and written.parent.parent == target.parent
    assert written.parent.name.startswith(".") and not written.parent.name.isdigit()
    assert sorted(p.name for p in target.parent.iterdir()) == ["3"]
    assert next_version(target.parent) == 4

    # A failed save leaves no version and no temporary directory behind.
    def failing_save(obj, export_dir, *args, **kwargs):
        Path(export_dir).mkdir(parents=True)
        (Path(export_dir) / "saved_model.pb").write_bytes(b"half of a file")
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        export_model(model, target.parent / "4", num_samples=5)
    assert sorted(p.name for p in target.parent.iterdir()) == ["3"]

    # An existing version is never overwritten.
    before = (target / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(InputError, match="does not exist yet"):
        export_model(model, target, num_samples=5)
    assert (target / "saved_model.pb").stat().st_mtime_ns == before


def test_cli_export_picks_the_next_version(exported, tiny_run, tmp_path, capsys):
    base = tmp_path / "export"
    shutil.copytree(exported["path"], base / MODEL / "1")
    assert cli.main(["export", str(tiny_run), "--model-name", MODEL, "--base-dir", str(base),
                     "--num-samples", str(K)]) == 0
    assert f"{MODEL} version 2 written to {base / MODEL / '2'}" in capsys.readouterr().out
    assert read_metadata(base / MODEL / "2")["version"] == 2
    loaded = tf.saved_model.load(str(base / MODEL / "2"))
    got = loaded.signatures["encode"](x=tf.constant(exported["inputs"]["x"]))
    np.testing.assert_allclose(got["z_mean"].numpy(), exported["reference"]["encode/z_mean"],
                               atol=TOL)

    # Bad arguments: one line naming the argument, exit status 2, nothing written.
    for args, message in [
        (["--version", "1"], "--version: expected a version that does not exist yet"),
        (["--version", "0"], "--version: expected an integer >= 1, got 0"),
        (["--num-samples", "0"], "--num-samples: expected an integer >= 1, got 0"),
    ]:
        code = cli.main(["export", str(tiny_run), "--model-name", MODEL, "--base-dir", str(base),
                         *args])
        assert code == 2 and message in capsys.readouterr().err
    code = cli.main(["export", str(tiny_run), "--model-name", "../up", "--base-dir", str(base)])
    assert code == 2 and "--model-name: expected a name" in capsys.readouterr().err
    code = cli.main(["export", str(tmp_path), "--model-name", MODEL, "--base-dir", str(base)])
    assert code == 2 and "RUN_DIR: expected a run directory" in capsys.readouterr().err
    assert sorted(p.name for p in (base / MODEL).iterdir()) == ["1", "2"]


def _write_pgm(path, pixels):
    """A binary PGM (P5) of uint8 grey levels [H, W]."""
    height, width = pixels.shape
    path.write_bytes(f"P5\n# tfvae test\n{width} {height}\n255\n".encode() + pixels.tobytes())


def test_c_api_program_matches_python(exported, c_example, tmp_path):
    exe = c_example

    x = exported["inputs"]["x"]
    grey = np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)
    _write_pgm(tmp_path / "grey.pgm", grey)
    _write_pgm(tmp_path / "narrow.pgm", grey[:, :20].copy())  # 28x20: the wrong shape
    x.tofile(tmp_path / "three.f32")  # raw float32, three images
    nan = x[:1].copy()
    nan[0, 0, 0, 0] = np.nan
    nan.tofile(tmp_path / "nan.f32")
    (x[:1] + 2.0).tofile(tmp_path / "two.f32")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    images = ["grey.pgm", "nan.f32", "three.f32", "two.f32", "narrow.pgm", "grey.pgm"]
    result = subprocess.run([str(exe), str(exported["path"]), *images], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]  # some images were refused
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["image"] for line in lines] == ["grey.pgm", "three.f32", "grey.pgm"]

    model = exported["model"]
    want_grey = serving_functions(model)["encode"](tf.constant(grey[None, :, :, None] / 255,
                                                               tf.float32))
    for line, want in [(lines[0], want_grey), (lines[2], want_grey)]:
        np.testing.assert_allclose(line["z_mean"], want["z_mean"].numpy(), atol=TOL)
        np.testing.assert_allclose(line["z_stddev"], want["z_stddev"].numpy(), atol=TOL)
    np.testing.assert_allclose(lines[1]["z_mean"], exported["reference"]["encode/z_mean"],
                               atol=TOL)
    np.testing.assert_allclose(lines[1]["z_stddev"], exported["reference"]["encode/z_stddev"],
                               atol=TOL)

    errors = [line for line in result.stderr.splitlines() if line.startswith("tfvae_encode:")]
    assert len(errors) == 3
    assert "nan.f32: INVALID_ARGUMENT: x: expected finite pixel values" in errors[0]
    assert "two.f32: INVALID_ARGUMENT: assertion failed: [x: expected pixel values in [0, 1]" \
        in errors[1]
    assert ("narrow.pgm: INVALID_ARGUMENT: assertion failed: [x: expected float32 images of "
            "shape [batch, 28, 28, 1], got shape] [1 28 20 1]") in errors[2]

    # float64 is refused by TensorFlow's own dtype check, as TF Serving's gRPC API refuses it.
    result = subprocess.run([str(exe), "--float64", str(exported["path"]), "grey.pgm"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "INVALID_ARGUMENT: Expects arg[0] to be float but double is provided" in result.stderr


def test_benchmark_prints_every_path(exported, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("serving_benchmark",
                                                  ROOT / "benchmarks" / "serving.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    rows = benchmark.measure(exported["model"], exported["path"], repeats=3, batches=1,
                             warmup=1)
    assert [row["path"] for row in rows] == ["keras eager", "keras tf.function", "saved_model",
                                             "tf1 session"]
    for row in rows:
        assert 0 < row["p50_ms"] <= row["p99_ms"] and row["images_per_s"] > 0
    table = benchmark.format_rows(rows)
    assert len(table.splitlines()) == 5 and "batch-256 images/s" in table
    rows = benchmark.measure_batches(exported["model"], exported["path"],
                                     signatures=["encode", "log_likelihood"], batch_sizes=(1, 4),
                                     seconds=0.01, warmup=1)
    assert [(row["signature"], row["batch"]) for row in rows] == [
        ("encode", 1), ("encode", 4), ("log_likelihood", 1), ("log_likelihood", 4)]
    for row in rows:
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["images_per_s"] == pytest.approx(row["batch"] / row["p50_ms"] * 1e3)
    assert len(benchmark.format_batches(rows).splitlines()) == 5


# ------------------------------------------------------------------------ the score signature


def test_score_is_minus_the_elbo_averaged_over_draws(exported):
    model, inputs, ref = exported["model"], exported["inputs"], exported["reference"]
    meta = read_metadata(exported["path"])
    # The run has no threshold: 16 draws, and no anomaly output.
    assert meta["score_num_samples"] == 16 and "anomaly_threshold" not in meta
    assert meta["signatures"]["score"] == {"inputs": ["x", "seed"], "outputs": ["score"]}
    x, seed = tf.constant(inputs["x"]), tf.constant(inputs["seed"])
    # One draw is minus log_likelihood's elbo for the same seed: the same stream of noise.
    one = serving_functions(model, K, score=ScoreSettings(1))["score"](x, seed)["score"]
    np.testing.assert_allclose(one.numpy(), -ref["log_likelihood/elbo"], rtol=TOL)
    # A row's score depends on its own input and seed alone.
    alone = serving_functions(model, K)["score"](x[1:2], seed[1:2])["score"]
    np.testing.assert_allclose(alone.numpy(), ref["score/score"][1:2], rtol=TOL)
    assert ref["score/score"].dtype == np.float32 and np.all(np.isfinite(ref["score/score"]))
    # More draws average more one-draw scores: the 16-draw score lies among them.
    singles = serving_functions(model, K, score=ScoreSettings(1))["score"](
        tf.repeat(x, 50, axis=0), tf.range(150, dtype=tf.int64))["score"].numpy().reshape(3, 50)
    assert np.all(ref["score/score"] > singles.min(axis=1))
    assert np.all(ref["score/score"] < singles.max(axis=1))


def test_score_with_many_draws_approaches_tfvae_score(exported):
    """The export's noise is CounterSeed's, tfvae.score's TensorFlow's Philox: not the same draws,
    but estimates of the same expectation, which agree as the draws grow."""
    import tfvae

    model, x = exported["model"], exported["inputs"]["x"]
    draws = 300
    got = serving_functions(model, K, score=ScoreSettings(draws))["score"](
        tf.constant(x), tf.zeros([3], tf.int64))["score"].numpy()
    want = tfvae.score(model, x, num_samples=draws, seed=0)
    # The spread of one draw's score, from the export's own one-draw scores of many seeds.
    singles = serving_functions(model, K, score=ScoreSettings(1))["score"](
        tf.constant(np.repeat(x, 200, axis=0)),
        tf.range(600, dtype=tf.int64))["score"].numpy().reshape(3, 200)
    spread = singles.std(axis=1)
    assert np.all(spread > 0)
    # Two independent means of `draws` draws: their difference has sd spread * sqrt(2 / draws).
    np.testing.assert_array_less(np.abs(got - want), 5 * spread * np.sqrt(2 / draws) + 1e-3)
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def _with_threshold(run_dir, destination, threshold, method="elbo", num_samples=4):
    """A copy of ``run_dir`` whose anomaly threshold is ``threshold``."""
    from tfvae.evaluation.scores import Threshold

    shutil.copytree(run_dir, destination, ignore=shutil.ignore_patterns(".tfvae.lock"))
    RunDirectory(destination).write_threshold(Threshold(
        float(threshold), 0.01, method, num_samples, 0, 200))
    return destination


@pytest.fixture(scope="module")
def thresholded(exported, tiny_run, tmp_path_factory):
    """The run exported with an anomaly threshold: the middle one of its three test rows'
    scores with the threshold's 4 draws, every seed 0 (the C program's default seed)."""
    x = tf.constant(exported["inputs"]["x"])
    scores = serving_functions(exported["model"], K, score=ScoreSettings(4))["score"](
        x, tf.zeros([3], tf.int64))["score"].numpy()
    middle = float(np.sort(scores)[1])
    base = tmp_path_factory.mktemp("thresholded")
    run_dir = _with_threshold(tiny_run, base / "run", middle)
    path = export_run(run_dir, MODEL, base_dir=base / "export", num_samples=K)
    return {"path": path, "threshold": middle, "scores": scores}


def test_score_flags_anomalies_above_the_runs_threshold(exported, thresholded):
    model, inputs = exported["model"], exported["inputs"]
    seeds = np.zeros(3, np.int64)  # the seeds the threshold's scores were taken with
    x, seed = tf.constant(inputs["x"]), tf.constant(seeds)
    # The scores of the three rows with the threshold's 4 draws; the threshold is the middle one.
    scores, middle, path = thresholded["scores"], thresholded["threshold"], thresholded["path"]
    meta = read_metadata(path)
    assert meta["anomaly_threshold"]["threshold"] == middle
    assert meta["anomaly_threshold"]["num_samples"] == meta["score_num_samples"] == 4
    assert meta["signatures"]["score"]["outputs"] == ["score", "anomaly"]

    # TF Serving's loader: anomaly is score > the metadata's threshold, int64, one per row; a
    # score equal to the threshold is not above it.
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        out = tf1_run(session, meta_graph, "score", {"x": inputs["x"], "seed": seeds})
    np.testing.assert_allclose(out["score"], scores, rtol=TOL)
    assert out["anomaly"].dtype == np.int64
    np.testing.assert_array_equal(out["anomaly"], out["score"] > meta["anomaly_threshold"][
        "threshold"])
    assert sorted(out["anomaly"].tolist()) == [0, 0, 1]

    # The float32 score is compared exactly with the float64 threshold: just below a score,
    # that score is above it, though the threshold rounds to it in float32.
    below = np.nextafter(middle, -np.inf)
    assert np.float32(below) == np.float32(middle)
    flags = serving_functions(model, K, score=ScoreSettings(4, below))["score"](x, seed)
    np.testing.assert_array_equal(flags["anomaly"].numpy(), scores > below)
    assert sorted(flags["anomaly"].numpy().tolist()) == [0, 1, 1]


def test_score_settings_come_from_the_metadatas_threshold(tmp_path):
    from tfvae.evaluation.scores import Threshold

    assert ScoreSettings.from_metadata(None).outputs() == ("score",)
    elbo = Threshold(120.5, 0.01, "elbo", 8, 3, 100)
    settings = ScoreSettings.from_metadata({"anomaly_threshold": elbo})
    assert (settings.num_samples, settings.threshold, settings.outputs()) == (
        8, 120.5, ("score", "anomaly"))
    # A threshold on importance-sampled scores does not compare with the score signature's ELBO:
    # no anomaly output then, and the default draws.
    importance = Threshold(120.5, 0.01, "importance", 256, 3, 100)
    settings = ScoreSettings.from_metadata({"anomaly_threshold": importance})
    assert (settings.num_samples, settings.threshold) == (16, None)
    for bad in [{"anomaly_threshold": {"method": "elbo"}}, {"anomaly_threshold": 3.0}]:
        with pytest.raises(InputError, match="^metadata: expected an anomaly_threshold"):
            ScoreSettings.from_metadata(bad)
    with pytest.raises(InputError, match="^anomaly threshold: expected a finite number"):
        ScoreSettings(4, float("nan"))
    # export_model takes a Threshold in the metadata and records it as the run's export would.
    model = VAE(image_shape=(4, 4, 1), latent_dim=2, hidden=8, seed=0)
    path = export_model(model, tmp_path / "m" / "1", num_samples=5,
                        metadata={"anomaly_threshold": elbo})
    meta = read_metadata(path)
    assert meta["anomaly_threshold"]["threshold"] == 120.5 and meta["score_num_samples"] == 8
    out = tf.saved_model.load(str(path)).signatures["score"](
        x=tf.fill([2, 4, 4, 1], 0.5), seed=tf.constant([0, 1], tf.int64))
    np.testing.assert_array_equal(out["anomaly"].numpy(), out["score"].numpy() > 120.5)


def test_a_vector_model_of_real_values_exports_every_signature(tmp_path):
    model = VAE(image_shape=(7,), likelihood="normal", latent_dim=2, hidden=16, seed=0)
    path = export_model(model, tmp_path / "rows" / "1", num_samples=20)
    meta = read_metadata(path)
    assert meta["image_shape"] == [7] and meta["likelihood"] == "normal"
    assert set(meta["signatures"]) == set(SIGNATURES) - {"impute"}
    rng = np.random.default_rng(0)
    # Values far outside [0, 1]: any finite value is a normal model's.
    inputs = {"x": (rng.standard_normal((3, 7)) * 20 - 5).astype(np.float32),
              "z": rng.standard_normal((3, 2)).astype(np.float32),
              "seed": np.array([0, 7, -3], np.int64)}
    functions = serving_functions(model, 20)
    loaded = tf.saved_model.load(str(path))
    feeds = {name: {s.name: inputs[s.name] for s in specs}
             for name, specs in input_specs(model).items()}
    want = {name: {k: v.numpy() for k, v in functions[name](
        *[tf.constant(value) for value in feed.values()]).items()}
        for name, feed in feeds.items()}
    for name, feed in feeds.items():
        got = {k: v.numpy() for k, v in loaded.signatures[name](
            **{k: tf.constant(v) for k, v in feed.items()}).items()}
        assert_matches(got, want[name])
        for value in want[name].values():
            assert np.all(np.isfinite(value)), name
    assert want["score"]["score"].shape == (3,)
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:  # TF Serving's loader
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        for name, feed in feeds.items():
            assert_matches(tf1_run(session, meta_graph, name, feed), want[name])
    np.testing.assert_array_equal(tf.make_ndarray(read_warmup(path)[0].predict_log.request
                                                  .inputs["x"]), np.full((1, 7), 0.5))
    # NaN and a wrong width are refused, naming x.
    nan = inputs["x"].copy()
    nan[1, 3] = np.nan
    for bad, message in [(nan, "x: expected finite pixel values"),
                         (inputs["x"][:, :6], r"x: expected float32 images of shape \[batch, 7\]")]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            loaded.signatures["score"](x=tf.constant(bad), seed=tf.constant(inputs["seed"]))


@pytest.mark.parametrize("likelihood", ["poisson", "negative_binomial"])
def test_a_count_model_exports_the_score(tmp_path, likelihood):
    model = VAE(image_shape=(5,), likelihood=likelihood, latent_dim=2, hidden=8, seed=0)
    path = export_model(model, tmp_path / "counts" / "1", num_samples=10)
    counts = np.array([[0, 1, 2, 3, 9], [4, 0, 0, 1, 1]], np.float32)
    seed = np.array([1, 2], np.int64)
    got = tf.saved_model.load(str(path)).signatures["score"](x=tf.constant(counts),
                                                              seed=tf.constant(seed))
    want = serving_functions(model, 10)["score"](tf.constant(counts), tf.constant(seed))
    np.testing.assert_allclose(got["score"].numpy(), want["score"].numpy(), rtol=TOL)
    assert np.all(np.isfinite(got["score"].numpy())) and np.all(got["score"].numpy() > 0)


def test_c_api_program_runs_the_score_signature(exported, thresholded, c_example, tmp_path):
    x, model = exported["inputs"]["x"], exported["model"]
    x.tofile(tmp_path / "three.f32")
    nan = x[:1].copy()
    nan[0, 0, 0, 0] = np.nan
    nan.tofile(tmp_path / "nan.f32")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    def run(*args):
        return subprocess.run([str(c_example), *map(str, args)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    def scores(seed, settings=None):
        return serving_functions(model, K, score=settings)["score"](
            tf.constant(x), tf.fill([3], tf.constant(seed, tf.int64)))

    result = run("--signature", "score", "--seed", 7, exported["path"], "three.f32", "nan.f32")
    assert result.returncode == 1, result.stderr[-3000:]
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    assert sorted(line) == ["image", "score"] and line["image"] == "three.f32"
    np.testing.assert_allclose(line["score"], scores(7)["score"].numpy(), rtol=TOL)
    assert "nan.f32: INVALID_ARGUMENT: x: expected finite pixel values" in result.stderr
    # Without --seed every example's seed is 0; --seed with a signature that takes none is
    # refused.
    result = run("--signature", "score", exported["path"], "three.f32")
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(json.loads(result.stdout)["score"], scores(0)["score"].numpy(),
                               rtol=TOL)
    result = run("--seed", 1, exported["path"], "three.f32")
    assert result.returncode == 2 and "--seed is for a signature that takes seeds" in result.stderr

    # An export with the run's threshold (the median score of seed 0): anomaly beside the
    # score, as integers.
    threshold, path = thresholded["threshold"], thresholded["path"]
    result = run("--signature", "score", path, "three.f32")
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(result.stdout)
    want = scores(0, ScoreSettings(4, threshold))
    np.testing.assert_allclose(line["score"], want["score"].numpy(), rtol=TOL)
    assert line["anomaly"] == want["anomaly"].numpy().tolist()
    # The printed scores are float32 in 9 digits: read back as float32, they are the compared ones.
    assert line["anomaly"] == [int(np.float32(s) > threshold) for s in line["score"]]

    # A model of vectors: raw float32 values, D per example; the other signatures too.
    vectors = VAE(image_shape=(7,), likelihood="normal", latent_dim=2, hidden=16, seed=0)
    path = export_model(vectors, tmp_path / "rows" / "1", num_samples=20)
    rows = (np.random.default_rng(5).standard_normal((2, 7)) * 3).astype(np.float32)
    rows.tofile(tmp_path / "rows.f32")
    functions = serving_functions(vectors, 20)
    for signature, args in [("score", ["--seed", 4]), ("log_likelihood", ["--seed", 4]),
                            ("encode", []), ("reconstruct", [])]:
        result = run("--signature", signature, *args, path, "rows.f32")
        assert result.returncode == 0, result.stderr[-3000:]
        line = json.loads(result.stdout)
        feed = [tf.constant(rows)] + ([tf.constant([4, 4], tf.int64)] if args else [])
        for key, value in functions[signature](*feed).items():
            np.testing.assert_allclose(line[key], value.numpy(), rtol=TOL, atol=TOL)

    # A model of rows with missing values: NaN in the file, imputed by the impute signature.
    holed = VAE(image_shape=(7,), likelihood="normal", latent_dim=2, hidden=16, seed=0,
                allow_missing=True)
    path = export_model(holed, tmp_path / "holes" / "1", num_samples=20)
    rows[0, 3] = rows[1, 0] = np.nan
    rows.tofile(tmp_path / "holes.f32")
    result = run("--signature", "impute", "--seed", 4, path, "holes.f32")
    assert result.returncode == 0, result.stderr[-3000:]
    want = serving_functions(holed, 20)["impute"](tf.constant(rows), tf.constant([4, 4], tf.int64))
    np.testing.assert_allclose(json.loads(result.stdout)["x_imputed"],
                               want["x_imputed"].numpy(), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("body", [dict(architecture="conv"),
                                  dict(architecture="resnet", latent_groups=2, hidden=8)])
def test_every_signature_answers_a_batch_of_no_rows(tmp_path, body):
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, seed=0, **body)
    path = export_model(model, tmp_path / "empty" / "1", num_samples=4)
    loaded = tf.saved_model.load(str(path))
    for name, specs in input_specs(model).items():
        one = {s.name: tf.zeros([1, *s.shape[1:]], s.dtype) for s in specs}
        want = loaded.signatures[name](**one)
        got = loaded.signatures[name](**{k: v[:0] for k, v in one.items()})
        assert sorted(got) == sorted(want), name
        for key, value in want.items():
            assert got[key].shape == (0, *value.shape[1:]), f"{name}/{key}"
