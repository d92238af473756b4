"""The export formats: one registry (``FORMATS``) and one dispatcher (:func:`export_model`) that
the ``tfvae export`` command and Python callers both go through.

A format is a class with

- ``versioned``: True if it writes TF Serving's ``BASE/NAME/VERSION`` layout (the path is a
  version directory, never replaced), False if it writes the file or directory it is given;
- ``check(path, *, overwrite)``: what can be checked before the model is loaded (the path, the
  format's extra being installed), raising ``InputError``;
- ``write(model, path, *, num_samples, overwrite, metadata, **options)``: the export; returns the
  path written.

Adding one is a class and its registration, ``@FORMATS.register("name")``; ``tfvae export
--format name --out PATH`` then writes it. The built-in formats load only when used, so listing
them (for the command's choices) needs no TensorFlow.
"""

import math

from tfvae.checks import check_count
from tfvae.options import EXPORT_LOG_LIKELIHOOD_SAMPLES
from tfvae.registry import Registry

FORMATS = Registry("format", {
    "savedmodel": "tfvae.export.savedmodel:SavedModelFormat",
    "tflite": "tfvae.export.runtimes:LiteRTFormat",
    "onnx": "tfvae.export.runtimes:ONNXFormat",
})


class ExportFormat:
    """The base of the export formats (see the module's docstring): nothing to check by
    default."""

    versioned = False

    def check(self, path, *, overwrite=False):
        """Refuse, before the model is loaded, a ``path`` (or a set-up) this format cannot
        write."""

    def write(self, model, path, *, num_samples=EXPORT_LOG_LIKELIHOOD_SAMPLES, overwrite=False,
              metadata=None, **options):
        raise NotImplementedError


def export_format(name):
    """The registered format ``name`` (an instance), or an ``InputError`` naming the formats."""
    return FORMATS.get(name)()


def export_model(model, path, *, format="savedmodel", num_samples=EXPORT_LOG_LIKELIHOOD_SAMPLES,
                 overwrite=False, metadata=None, **options):
    """Write ``model`` at ``path`` in ``format`` (a name of ``FORMATS``); returns the path
    written.

    "savedmodel" (default): ``path`` is a version directory such as ``export/vae/1`` (see
    :mod:`tfvae.export.savedmodel`; ``metadata`` adds to its ``assets/tfvae.json``); "tflite":
    one ``.tflite`` file; "onnx": a directory of ``SIGNATURE.onnx`` files (see
    :mod:`tfvae.export.runtimes`). ``num_samples`` is k of the ``log_likelihood`` signature;
    ``metadata``'s ``anomaly_threshold`` (a run's ``Threshold`` or its dict) gives the ``score``
    signature its draws and its ``anomaly`` output in every built-in format.
    Nothing existing is replaced unless ``overwrite`` (and a SavedModel version never is).
    """
    member = export_format(format)
    # The log_likelihood signature decodes num_samples images per row: checked before anything
    # is made on disk.
    check_count("num_samples", num_samples, math.prod(model.image_shape), what="images")
    member.check(path, overwrite=overwrite)
    return member.write(model, path, num_samples=num_samples, overwrite=overwrite,
                        metadata=metadata, **options)
