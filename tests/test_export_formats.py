"""The export-format family: one registry, one dispatcher the command and Python share, and a
format added by a user with one class and its registration."""

import json

import numpy as np
import pytest

from tfvae import InputError
from tfvae.cli import main
from tfvae.export import FORMATS, ExportFormat, export_model
from tfvae.runs import RunDirectory
from tfvae.storage import check_output, write_text


@FORMATS.register("latent-json")
class LatentMeansJSON(ExportFormat):
    """A user's format: the encoder's means of a fixed probe batch, as JSON (enough to show the
    family's interface: a check before the model loads, then the write)."""

    def check(self, path, *, overwrite=False):
        check_output(path, ".json", overwrite=overwrite)

    def write(self, model, path, *, num_samples=1, overwrite=False, metadata=None):
        probe = np.full((2, *model.image_shape), 0.5, np.float32)
        means = model.encode(probe).mean().numpy()
        return write_text(path, json.dumps({"z_mean": means.tolist()}), overwrite=overwrite)


def test_a_registered_format_is_written_by_python_and_by_the_command(tiny_run, tmp_path, capsys):
    model = RunDirectory(tiny_run).load_model()
    probe = np.full((2, *model.image_shape), 0.5, np.float32)
    want = model.encode(probe).mean().numpy()
    path = export_model(model, tmp_path / "a.json", format="latent-json")
    np.testing.assert_allclose(json.loads(path.read_text())["z_mean"], want, rtol=1e-6)
    assert main(["export", str(tiny_run), "--format", "latent-json", "--out",
                 str(tmp_path / "b.json")]) == 0
    assert str(tmp_path / "b.json") in capsys.readouterr().out
    np.testing.assert_allclose(json.loads((tmp_path / "b.json").read_text())["z_mean"], want,
                               rtol=1e-6)
    # Its own check runs before the model is loaded; flags of the versioned layout are refused.
    assert main(["export", str(tiny_run), "--format", "latent-json", "--out",
                 str(tmp_path / "b.json")]) == 2
    assert "--out: expected a file that does not exist yet" in capsys.readouterr().err
    assert main(["export", str(tiny_run), "--format", "latent-json", "--out",
                 str(tmp_path / "c.json"), "--model-name", "m"]) == 2
    assert "--model-name: expected no --model-name with --format latent-json" in (
        capsys.readouterr().err)


def test_the_dispatcher_writes_the_savedmodel_by_default_and_names_unknown_formats(tiny_run,
                                                                                  tmp_path):
    import tensorflow as tf

    model = RunDirectory(tiny_run).load_model()
    path = export_model(model, tmp_path / "vae" / "1", num_samples=2)
    assert path == tmp_path / "vae" / "1"
    assert "encode" in tf.saved_model.load(str(path)).signatures
    with pytest.raises(InputError, match="^format: expected one of savedmodel, tflite, onnx"):
        export_model(model, tmp_path / "x", format="nope")
    assert FORMATS.names()[:3] == ("savedmodel", "tflite", "onnx")
