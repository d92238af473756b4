"""LiteRT and ONNX: every signature gives the SavedModel's numbers for the same inputs and seeds,
bad rows answer NaN, and the CLI writes the files. Each format's tests run when its extra is
installed (``tflite``: ai-edge-litert; ``onnx``: tf2onnx and onnxruntime)."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfvae import VAE, Autoencoder, noise, runtimes
from tfvae.cli import main
from tfvae.errors import InputError
from tfvae.export import export_model
from tfvae.evaluation.scores import Threshold
from tfvae.export.metadata import ScoreSettings
from tfvae.export.signatures import input_specs, serving_functions
from tfvae.export.versions import export_run

K = 30  # importance samples of log_likelihood
TOL = 1e-5
KINDS = ("vae", "conditional", "autoencoder", "groups", "resnet")


def test_the_exports_noise_is_standard_normal_and_per_row():
    from scipy import stats

    draws = noise.CounterSeed(tf.range(4000, dtype=tf.int64)).normals(16).numpy()
    assert stats.kstest(draws.ravel(), "norm").pvalue > 1e-3
    assert abs(draws.mean()) < 0.02 and abs(draws.std() - 1) < 0.015
    # Neighbouring seeds and neighbouring draws of one seed are uncorrelated.
    assert abs(np.corrcoef(draws[:-1, 0], draws[1:, 0])[0, 1]) < 0.08
    assert abs(np.corrcoef(draws[:, 0], draws[:, 1])[0, 1]) < 0.08
    # A row's draws depend on its own seed alone; streams differ; every int64 is a seed.
    seeds = tf.constant([5, 2**63 - 1, -2**63, -1], tf.int64)
    batch = noise.CounterSeed(seeds).normals(3).numpy()
    np.testing.assert_array_equal(batch[1], noise.CounterSeed(seeds[1:2]).normals(3).numpy()[0])
    assert np.isfinite(batch).all() and len(np.unique(batch, axis=0)) == 4
    assert not np.allclose(noise.CounterSeed(seeds, 1).normals(3), batch)
    # The numbers are part of the export's contract: a seed keeps its sample across versions.
    np.testing.assert_allclose(noise.CounterSeed(tf.constant([0], tf.int64)).normals(3)[0],
                               [1.9244854, -0.02260407, -0.7628245], atol=1e-6)


def make_model(kind):
    if kind == "autoencoder":
        return Autoencoder(image_shape=(4, 4, 1), latent_dim=2, hidden=8, seed=0)
    if kind == "groups":  # a hierarchy of 2 latent groups on the residual body, its GELU too
        return VAE(image_shape=(4, 4, 1), architecture="resnet", latent_groups=2, latent_dim=2,
                   hidden=8, activation="gelu", seed=0)
    if kind == "resnet":  # one latent on the residual body, its upsampling; 8-bit pixels
        return VAE(image_shape=(4, 4, 1), architecture="resnet", latent_dim=2, hidden=8,
                   activation="gelu", likelihood="discretized_logistic", logistic_components=2,
                   seed=0)
    if kind == "conditional":  # the MLP's GELU too
        return VAE(image_shape=(4, 4, 1), latent_dim=2, hidden=8, activation="gelu",
                   num_classes=3, seed=0)
    return VAE(image_shape=(4, 4, 1), latent_dim=2, hidden=8, seed=0)


def inputs_for(model):
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(4, 4, 4, 1)).astype(np.float32)
    if model.decoder.likelihood.support == "eight_bit":  # on the 256 levels
        x = np.round(x * 255) / np.float32(255)
    return {"x": x,
            "seed": np.array([0, 7, 2**40 + 3, -5], np.int64),
            "z": rng.standard_normal((4, model.latent_dim)).astype(np.float32),
            "label": np.array([0, 2, 1, 2], np.int64)}


@pytest.fixture(scope="module", params=KINDS)
def exported(request, tmp_path_factory):
    """A model, its SavedModel's answers to every signature, and its inputs."""
    model = make_model(request.param)
    path = export_model(model, tmp_path_factory.mktemp("sm") / "m" / "1", num_samples=K)
    loaded = tf.saved_model.load(str(path))
    inputs = inputs_for(model)
    want = {}
    for name, specs in input_specs(model).items():
        feed = {s.name: tf.constant(inputs[s.name]) for s in specs}
        want[name] = {k: v.numpy() for k, v in loaded.signatures[name](**feed).items()}
    return {"kind": request.param, "model": model, "inputs": inputs, "want": want}


def bad_inputs(model, inputs):
    """Inputs whose rows 1 (a pixel of 2.0), 2 (NaN) and, with labels, 3 (label 5) are bad."""
    bad = {k: v.copy() for k, v in inputs.items()}
    bad["x"][1, 0, 0, 0] = 2.0
    bad["x"][2, 1, 1, 0] = np.nan
    bad["z"][2, 0] = np.nan
    bad["label"][3] = 5
    return bad


def bad_rows(name, model):
    """The rows of :func:`bad_inputs` that ``name`` must answer with NaN."""
    rows = {1, 2} if "x" in [s.name for s in input_specs(model)[name]] else set()
    rows |= {2} if name == "decode" else set()
    rows |= {3} if model.conditional else set()
    return sorted(rows)


def check_all(exported, run):
    """``run(name, feed) -> outputs`` agrees with the SavedModel on every signature; bad rows
    answer NaN and leave the others alone."""
    model, inputs, want = exported["model"], exported["inputs"], exported["want"]
    names = set(input_specs(model))
    assert ("log_likelihood" in names) == (exported["kind"] != "autoencoder")
    bad = bad_inputs(model, inputs)
    for name, specs in input_specs(model).items():
        got = run(name, {s.name: inputs[s.name] for s in specs})
        assert sorted(got) == sorted(want[name]), name
        for key, value in want[name].items():
            np.testing.assert_allclose(got[key], value, rtol=TOL, atol=TOL,
                                       err_msg=f"{name}/{key}")
        got = run(name, {s.name: bad[s.name] for s in specs})
        rows = bad_rows(name, model)
        good = [i for i in range(4) if i not in rows]
        for key, value in want[name].items():
            assert_bad_rows(got[key], rows, f"{name}/{key}")
            np.testing.assert_allclose(got[key][good], value[good], rtol=TOL, atol=TOL,
                                       err_msg=f"{name}/{key}")


def assert_bad_rows(values, rows, what):
    """Bad rows answer NaN in a float output, -1 in an integer one (score's anomaly)."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.integer):
        assert (values[rows] == -1).all(), what
    else:
        assert np.isnan(values[rows]).all(), what


def runner(fmt, out):
    """``run(name, feed) -> outputs`` for the files of ``fmt`` written at ``out``."""
    if fmt == "tflite":
        lite = pytest.importorskip("ai_edge_litert.interpreter").Interpreter(model_path=str(out))
        return lambda name, feed: lite.get_signature_runner(name)(**feed)
    ort = pytest.importorskip("onnxruntime")

    def run(name, feed):
        session = ort.InferenceSession(str(out / f"{name}.onnx"))
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, feed)))

    return run


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_every_signature_matches_the_savedmodel(fmt, exported, tmp_path):
    pytest.importorskip({"tflite": "ai_edge_litert", "onnx": "tf2onnx"}[fmt])
    model = exported["model"]
    out = tmp_path / ("m.tflite" if fmt == "tflite" else "onnx")
    paths = runtimes.write(model, fmt, out, num_samples=K)
    want = [out] if fmt == "tflite" else [out / f"{n}.onnx" for n in input_specs(model)]
    assert sorted(paths) == sorted(want)
    if fmt == "tflite":
        lite = pytest.importorskip("ai_edge_litert.interpreter").Interpreter(model_path=str(out))
        assert sorted(lite.get_signature_list()) == sorted(input_specs(model))
    check_all(exported, runner(fmt, out))


@pytest.mark.parametrize("fmt, out", [("tflite", "vae.tflite"), ("onnx", "vae_onnx")])
def test_cli_writes_each_format_and_refuses_to_replace_it(fmt, out, tiny_run, tmp_path, capsys):
    """The files of ``tfvae export --format`` answer as the run's SavedModel does."""
    pytest.importorskip({"tflite": "ai_edge_litert", "onnx": "tf2onnx"}[fmt])
    out = tmp_path / out
    assert main(["export", str(tiny_run), "--format", fmt, "--out", str(out), "--num-samples",
                 str(K)]) == 0
    assert str(out) in capsys.readouterr().out
    files = {p: p.read_bytes() for p in ([out] if fmt == "tflite" else out.iterdir())}
    assert main(["export", str(tiny_run), "--format", fmt, "--out", str(out)]) == 2
    assert "--out" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in files} == files
    saved = tf.saved_model.load(str(export_run(tiny_run, "m", base_dir=tmp_path, num_samples=K)))
    x = np.random.default_rng(0).uniform(size=(3, 28, 28, 1)).astype(np.float32)
    seed = np.array([1, 2, 3], np.int64)
    run = runner(fmt, out)
    for name, feed in (("encode", {"x": x}), ("sample", {"seed": seed}),
                       ("log_likelihood", {"x": x, "seed": seed})):
        want = saved.signatures[name](**{k: tf.constant(v) for k, v in feed.items()})
        got = run(name, feed)
        for key, value in want.items():
            np.testing.assert_allclose(got[key], value.numpy(), rtol=TOL, atol=TOL)


def test_onnx_files_are_not_replaced(tmp_path):
    pytest.importorskip("tf2onnx")
    model = make_model("vae")
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "decode.onnx").write_bytes(b"mine")
    with pytest.raises(InputError, match="^out: expected a file that does not exist yet"):
        runtimes.write(model, "onnx", tmp_path / "onnx", num_samples=K)
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == ["decode.onnx"]
    runtimes.write(model, "onnx", tmp_path / "onnx", num_samples=K, overwrite=True)
    assert (tmp_path / "onnx" / "decode.onnx").read_bytes() != b"mine"


def test_an_onnx_optimizer_that_fails_is_skipped_and_the_environment_kept(monkeypatch):
    tf2onnx = pytest.importorskip("tf2onnx")
    ort = pytest.importorskip("onnxruntime")
    from tf2onnx.optimizer.optimizer_base import GraphOptimizerBase

    copied = []

    class Failing(GraphOptimizerBase):
        def _optimize(self, graph):
            # tf2onnx copies the graph before an optimizer unless the variable says not to.
            copied.append(os.environ.get("TF2ONNX_CATCH_ERRORS"))
            raise RuntimeError("this optimizer fails")

    monkeypatch.setitem(tf2onnx.optimizer._optimizers, "failing", Failing)
    monkeypatch.setenv("TF2ONNX_CATCH_ERRORS", "TRUE")  # the user's own setting
    fn = tf.function(lambda x: {"y": 2.0 * x + 1.0},
                     input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    proto = runtimes._onnx_proto(tf2onnx, fn)
    # First without the copies, where the failure stops the conversion; then with them (the
    # variable unset: tf2onnx reads any value as FALSE), where it is skipped at each round.
    assert copied[0] == "FALSE" and set(copied[1:]) == {None} and len(copied) > 1
    assert os.environ["TF2ONNX_CATCH_ERRORS"] == "TRUE"
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    [y] = ort.InferenceSession(proto.SerializeToString()).run(["y"], {"x": x})
    np.testing.assert_allclose(y, 2 * x + 1)


def test_missing_extra_is_one_line_naming_it(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # its import now fails
    assert main(["export", str(tiny_run), "--format", "onnx", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'tfvae[onnx]'" in err[0], err
    assert not (tmp_path / "o").exists()


def test_a_model_onnx_cannot_hold_is_refused_before_any_file(tmp_path):
    pytest.importorskip("tf2onnx")
    # Keras's CELU is alpha * expm1(x / alpha), and ONNX has no Expm1.
    model = VAE(image_shape=(4, 4, 1), latent_dim=2, hidden=8, activation="celu", seed=0)
    with pytest.raises(InputError, match=r"^format: expected a model whose signatures convert "
                       r"to ONNX \(opset 18\).*'encode' signature needs the op Expm1"):
        runtimes.write(model, "onnx", tmp_path / "onnx", num_samples=K)
    assert not any((tmp_path / "onnx").glob("*"))


def test_the_litert_converters_refusal_names_the_signature_and_the_ops():
    # The lines that matter of the converter's message for a model it could not hold.
    message = ("<unknown>:0: error: loc(...): 'tf.Conv2D' op is neither a custom op nor a flex "
               "op\nerror: failed while converting: 'decode': \nSome ops are not supported by "
               "the native TFLite runtime, you can enable TF kernels fallback using TF Select."
               "\nTF Select ops: Conv2D, Erfc\nDetails:\n\ttf.Conv2D(tensor<?x?x4x8xf32>)")
    error = runtimes._unconvertible("tflite", *runtimes._tflite_failure(message))
    assert str(error).endswith("got 'tflite' for a model whose 'decode' signature needs the ops "
                               "Conv2D, Erfc, which it lacks"), str(error)
    legalize = "error: failed while converting: 'score': \nfailed to legalize operation 'tfl.x'"
    assert runtimes._tflite_failure(legalize) == ("score", "the op tfl.x in a form")


def _files(model, fmt, out, metadata=None):
    """Write ``model`` as ``fmt`` at ``out``; returns its runner."""
    pytest.importorskip({"tflite": "ai_edge_litert", "onnx": "tf2onnx"}[fmt])
    runtimes.write(model, fmt, out, num_samples=K, metadata=metadata)
    return runner(fmt, out)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_score_with_a_threshold_matches_the_savedmodel(fmt, tmp_path):
    """The score's draws and threshold come from the metadata's anomaly_threshold in every
    format; a bad row's score is NaN and its anomaly -1."""
    model = make_model("conditional")
    inputs = inputs_for(model)
    feed = {name: inputs[name] for name in ("x", "seed", "label")}
    scores = serving_functions(model, K, score=ScoreSettings(6))["score"](
        *[tf.constant(v) for v in feed.values()])["score"].numpy()
    threshold = Threshold(float(np.median(scores)), 0.05, "elbo", 6, 0, 40)
    metadata = {"anomaly_threshold": threshold}
    path = export_model(model, tmp_path / "sm" / "1", num_samples=K, metadata=metadata)
    want = {k: v.numpy() for k, v in tf.saved_model.load(str(path)).signatures["score"](
        **{k: tf.constant(v) for k, v in feed.items()}).items()}
    np.testing.assert_allclose(want["score"], scores, rtol=TOL)
    assert sorted(want["anomaly"].tolist()) == [0, 0, 1, 1]

    run = _files(model, fmt, tmp_path / ("m.tflite" if fmt == "tflite" else "onnx"), metadata)
    got = run("score", feed)
    assert sorted(got) == ["anomaly", "score"]
    np.testing.assert_allclose(got["score"], want["score"], rtol=TOL, atol=TOL)
    assert got["anomaly"].dtype == np.int64
    np.testing.assert_array_equal(got["anomaly"], want["anomaly"])
    np.testing.assert_array_equal(got["anomaly"], got["score"] > threshold.threshold)

    bad = bad_inputs(model, inputs)
    got = run("score", {name: bad[name] for name in feed})
    rows = bad_rows("score", model)
    assert rows == [1, 2, 3]
    assert np.isnan(got["score"][rows]).all() and (got["anomaly"][rows] == -1).all()
    np.testing.assert_allclose(got["score"][0], want["score"][0], rtol=TOL)
    assert got["anomaly"][0] == want["anomaly"][0]


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_a_vector_model_of_real_values_matches_the_savedmodel(fmt, tmp_path):
    model = VAE(image_shape=(7,), likelihood="normal", latent_dim=2, hidden=16, seed=0)
    path = export_model(model, tmp_path / "sm" / "1", num_samples=K)
    loaded = tf.saved_model.load(str(path))
    rng = np.random.default_rng(3)
    inputs = {"x": (rng.standard_normal((4, 7)) * 10 - 3).astype(np.float32),
              "z": rng.standard_normal((4, 2)).astype(np.float32),
              "seed": np.array([0, 7, 2**40 + 3, -5], np.int64)}
    bad = {k: v.copy() for k, v in inputs.items()}
    bad["x"][1, 2] = np.nan
    bad["x"][2, 0] = np.inf
    bad["z"][2, 1] = np.nan
    run = _files(model, fmt, tmp_path / ("m.tflite" if fmt == "tflite" else "onnx"))
    for name, specs in input_specs(model).items():
        feed = {s.name: inputs[s.name] for s in specs}
        want = {k: v.numpy() for k, v in loaded.signatures[name](
            **{k: tf.constant(v) for k, v in feed.items()}).items()}
        got = run(name, feed)
        assert sorted(got) == sorted(want), name
        for key, value in want.items():
            np.testing.assert_allclose(got[key], value, rtol=TOL, atol=TOL,
                                       err_msg=f"{name}/{key}")
        got = run(name, {s.name: bad[s.name] for s in specs})
        rows = [1, 2] if "x" in feed else [2] if "z" in feed else []
        good = [i for i in range(4) if i not in rows]
        for key, value in want.items():
            assert_bad_rows(got[key], rows, f"{name}/{key}")
            np.testing.assert_allclose(got[key][good], value[good], rtol=TOL, atol=TOL,
                                       err_msg=f"{name}/{key}")


def test_cli_gives_the_files_the_runs_threshold(tiny_run, tmp_path, capsys):
    pytest.importorskip("ai_edge_litert")
    import shutil

    from tfvae.runs import RunDirectory

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir, ignore=shutil.ignore_patterns(".tfvae.lock"))
    RunDirectory(run_dir).write_threshold(Threshold(150.0, 0.01, "elbo", 3, 0, 200))
    out = tmp_path / "vae.tflite"
    assert main(["export", str(run_dir), "--format", "tflite", "--out", str(out)]) == 0
    capsys.readouterr()
    x = np.random.default_rng(0).uniform(size=(3, 28, 28, 1)).astype(np.float32)
    seed = np.array([1, 2, 3], np.int64)
    got = runner("tflite", out)("score", {"x": x, "seed": seed})
    model = RunDirectory(run_dir).load_model()
    want = serving_functions(model, K, score=ScoreSettings(3, 150.0))["score"](
        tf.constant(x), tf.constant(seed))
    np.testing.assert_allclose(got["score"], want["score"].numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_array_equal(got["anomaly"], want["anomaly"].numpy())


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_a_model_of_rows_with_missing_values_matches_the_savedmodel(fmt, tmp_path):
    model = VAE(image_shape=(5,), likelihood="normal", latent_dim=2, hidden=16, seed=0,
                allow_missing=True)
    path = export_model(model, tmp_path / "sm" / "1", num_samples=K)
    loaded = tf.saved_model.load(str(path))
    assert "impute" in input_specs(model) and "impute" in loaded.signatures
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    x[1, 2] = x[3, 0] = np.nan  # missing: scored and imputed from the rest of the row
    x[2, 4] = np.inf  # bad
    inputs = {"x": x, "z": rng.standard_normal((4, 2)).astype(np.float32),
              "seed": np.array([0, 7, 2**40 + 3, -5], np.int64)}
    run = _files(model, fmt, tmp_path / ("m.tflite" if fmt == "tflite" else "onnx"))
    for name, specs in input_specs(model).items():
        feed = {s.name: inputs[s.name] for s in specs}
        if "x" in feed:  # the SavedModel refuses the bad row; the files answer NaN for it
            good = {k: np.delete(v, 2, axis=0) for k, v in feed.items()}
        else:
            good = feed
        want = {k: v.numpy() for k, v in loaded.signatures[name](
            **{k: tf.constant(v) for k, v in good.items()}).items()}
        got = run(name, feed)
        rows = [0, 1, 3] if "x" in feed else [0, 1, 2, 3]
        for key, value in want.items():
            np.testing.assert_allclose(got[key][rows], value, rtol=TOL, atol=TOL,
                                       err_msg=f"{name}/{key}")
            if "x" in feed:
                assert_bad_rows(got[key][2:3], [0], f"{name}/{key}")
    imputed = loaded.signatures["impute"](x=tf.constant(np.delete(x, 2, axis=0)),
                                          seed=tf.constant([0, 7, -5], tf.int64))["x_imputed"]
    kept = np.delete(x, 2, axis=0)
    assert np.isfinite(imputed.numpy()).all()
    np.testing.assert_array_equal(imputed.numpy()[~np.isnan(kept)], kept[~np.isnan(kept)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="infinity"):
        loaded.signatures["impute"](x=tf.constant(x), seed=tf.constant(inputs["seed"]))
