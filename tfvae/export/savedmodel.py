"""Export a trained VAE as a SavedModel for TF Serving, ``tf.saved_model.load`` and the TF C API.

Layout (TF Serving's): ``BASE/NAME/VERSION/`` holds ``saved_model.pb``, ``variables/`` and
``assets/tfvae.json``. A version is written into a hidden temporary directory beside it and
renamed into place at the end, so a server watching ``BASE/NAME`` never sees half of one (its
name is not an integer, so TF Serving ignores it); an existing version is never overwritten.

The signatures and what each computes: :mod:`tfvae.export.signatures`.

Warmup: ``assets.extra/tf_serving_warmup_requests`` holds one request of one valid row per
SignatureDef, which TF Serving replays before it answers the first request
(:mod:`tfvae.export.warmup`).
"""

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from tfvae.errors import InputError
from tfvae.export import rows as table_rows
from tfvae.export.formats import ExportFormat
from tfvae.export.metadata import METADATA_FILE, ScoreSettings, model_metadata
from tfvae.export.signatures import (DEFAULT_SIGNATURE, answering_no_rows, input_specs,
                                     serving_functions, signature_outputs)
from tfvae.export.versions import check_new, move_in_version, write_error
from tfvae.export.warmup import write_warmup
from tfvae.options import EXPORT_LOG_LIKELIHOOD_SAMPLES as DEFAULT_NUM_SAMPLES
from tfvae.storage import check_writable_dir, remove_stale, temporary_prefix

# The signatures answer requests and are never differentiated: tracing and saving their ops'
# gradient functions (the gelu's among them) took about a third of an export's time.
SAVE_OPTIONS = tf.saved_model.SaveOptions(experimental_custom_gradients=False)


# ------------------------------------------------------------------------------- the export


class SavedModelFormat(ExportFormat):
    """The SavedModel in TF Serving's layout: ``path`` is a version directory such as
    ``export/vae/1``, never replaced."""

    versioned = True

    def check(self, path, *, overwrite=False):
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise InputError("path", "a version directory such as export/vae/1", repr(path))
        if overwrite:
            raise InputError("overwrite", "False: SavedModel versions are never replaced",
                             repr(overwrite))
        path = Path(path)
        check_new(path, "path")
        check_writable_dir(path.parent, "path")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # what os.access cannot tell: a read-only file system, /sys
            raise InputError("path", "a path in a directory that can be written",
                             f"{str(path)!r} ({exc.strerror})") from None

    def write(self, model, path, *, num_samples=DEFAULT_NUM_SAMPLES, overwrite=False,
              metadata=None, next_free_version=False):
        return _write_savedmodel(model, Path(path), num_samples, metadata, next_free_version)


def export_metadata(model, num_samples, metadata=None):
    """What ``assets/tfvae.json`` records of an export of ``model``: the model, its signatures
    and the score's settings, then ``metadata`` (the run's) over them, with an
    ``anomaly_threshold`` as a dict."""
    metadata = dict(metadata or {})
    score = ScoreSettings.from_metadata(metadata)
    if dataclasses.is_dataclass(metadata.get("anomaly_threshold")):
        metadata["anomaly_threshold"] = dataclasses.asdict(metadata["anomaly_threshold"])
    outputs = signature_outputs(model, score)
    signatures = {name: {"inputs": [spec.name for spec in specs], "outputs": list(outputs[name])}
                  for name, specs in input_specs(model).items()}
    columns = table_rows.table_columns_of(model, metadata)
    if columns and "score" in signatures:
        names = table_rows.input_names(columns)
        signatures[table_rows.SIGNATURE] = {
            "inputs": [*names, *signatures["score"]["inputs"][1:]],
            "outputs": signatures["score"]["outputs"]}
        metadata["table_columns"] = [{**column, "input": name}
                                     for column, name in zip(columns, names)]
    return {**model_metadata(model, num_samples, signatures, DEFAULT_SIGNATURE),
            **score.metadata(), **metadata}


def _write_savedmodel(model, path, num_samples, metadata, next_free_version):
    """Write ``model`` as a SavedModel at ``path`` (checked by :class:`SavedModelFormat`).

    ``metadata`` adds to (or overrides) what ``assets/tfvae.json`` records about the model; its
    ``anomaly_threshold`` sets the ``score`` signature's (:class:`ScoreSettings`). The
    SavedModel is written beside ``path`` and renamed into place; returns the path written: with
    ``next_free_version``, a version that another export took meanwhile moves this one to the
    next free number (and its metadata's ``version`` with it), else it is refused.
    """
    remove_stale(path.parent)  # what killed exports left
    info = export_metadata(model, num_samples, metadata)
    score = ScoreSettings.from_metadata(metadata)

    specs = input_specs(model)
    functions = serving_functions(model, num_samples, score=score)
    signatures = {name: tf.function(answering_no_rows(fn), input_signature=specs[name],
                                    autograph=False)
                  for name, fn in functions.items()}
    columns = table_rows.table_columns_of(model, metadata)
    warmup = {}
    if columns and "score" in functions:
        signatures[table_rows.SIGNATURE], coder = table_rows.score_rows_function(
            functions["score"], specs["score"], columns)
        specs[table_rows.SIGNATURE] = signatures[table_rows.SIGNATURE].input_signature
        warmup[table_rows.SIGNATURE] = table_rows.warmup_row(columns)
    signatures["serving_default"] = signatures[DEFAULT_SIGNATURE]
    module = signature_module(signatures)
    if columns and "score" in functions:
        module.row_coder = coder  # its lookup tables are saved with the graphs

    # Everything is written inside the staging directory (its name is not an integer, so TF
    # Serving ignores it), which the next export removes if this one is killed.
    staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(path.name), dir=path.parent))
    try:
        assets = staging / "assets"
        assets.mkdir()
        (assets / METADATA_FILE).write_text(json.dumps(info, indent=2) + "\n")
        module.metadata = tf.saved_model.Asset(str(assets / METADATA_FILE))
        saved = staging / "saved_model"
        try:
            tf.saved_model.save(module, str(saved), signatures=signatures, options=SAVE_OPTIONS)
            # In TF Serving's layout the version's parent directory is named as the model.
            write_warmup({**specs, "serving_default": specs[DEFAULT_SIGNATURE]}, saved,
                         path.parent.name, warmup)
        except tf.errors.OpError as exc:  # TensorFlow's own writes: a full disk among them
            raise write_error(exc, path) from None
        path = move_in_version(saved, path, next_free_version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def signature_module(functions):
    """A ``tf.Module`` to save with ``functions`` (name -> ``tf.function``) as its signatures.

    It tracks the tf.Variables the graphs capture, not the Keras model: its own traced calls
    return TFP types that a loader without TFP could not read, and the TF1 loader (TF Serving's)
    restores variables by the captured handles.
    """
    module = _SignatureModule()
    for name, fn in functions.items():
        setattr(module, name, fn)
    return module


class _SignatureModule(tf.Module):
    """Finds the variables its functions capture when a save lists what it tracks, so that a
    function is traced once, in the save's own context. (That context is part of a trace's key:
    a function traced before the save would be traced again inside it.)"""

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        if "model_variables" not in vars(self):
            captured = {}
            for fn in vars(self).values():
                if isinstance(fn, tf.types.experimental.PolymorphicFunction):
                    for variable in fn.get_concrete_function().variables:
                        captured.setdefault(id(variable), variable)
            self.model_variables = list(captured.values())
        return super()._trackable_children(save_type, **kwargs)
