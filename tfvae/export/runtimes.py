"""An export's signatures for other runtimes: LiteRT (``.tflite``) and ONNX (``.onnx``).

Both are converted from the graphs of the SavedModel's signatures
(:func:`tfvae.export.signatures.serving_functions`), with the same inputs, outputs and noise
(:class:`tfvae.noise.CounterSeed`): the same inputs and seeds give the same numbers in every
format. LiteRT gets one ``.tflite`` file holding every signature, built from LiteRT's builtin
ops alone; ONNX one ``SIGNATURE.onnx`` file per signature (an ONNX model has one graph).

Input checks: both runtimes drop TensorFlow's asserts, so the checks are values here instead. A
row with NaN or infinite values, pixels outside [0, 1] for a Bernoulli model or a label outside
[0, K) gets NaN in every float output and -1 in every integer one (``score``'s ``anomaly``); the
other rows are answered as usual.

The ``score`` signature scores as the SavedModel's does (``metadata``'s ``anomaly_threshold``
sets its draws and threshold: :class:`tfvae.export.metadata.ScoreSettings`). ONNX Runtime checks each
input's trailing shape and dtype; LiteRT checks the dtype but resizes an input to the shape it is
given, so its callers check the shape.

Conversion needs TensorFlow alone for LiteRT (running the file needs ``ai-edge-litert``, the
``tflite`` extra) and ``tf2onnx`` for ONNX (the ``onnx`` extra, with ``onnxruntime`` to run it).
"""

import contextlib
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfvae.checks import check_choice, check_int
from tfvae.data import graph_checks
from tfvae.errors import InputError, arg
from tfvae.export.formats import ExportFormat
from tfvae.export.metadata import ScoreSettings
from tfvae.export.savedmodel import SAVE_OPTIONS, signature_module
from tfvae.export.signatures import input_specs, serving_functions
from tfvae.options import EXPORT_LOG_LIKELIHOOD_SAMPLES as DEFAULT_NUM_SAMPLES
from tfvae.storage import check_output, check_writable_dir, write_bytes

_PORTABLE = ("tflite", "onnx")
# ONNX's opset 18 has every op the graphs need; tf2onnx 1.17 writes it.
ONNX_OPSET = 18
_EXTRAS = {"onnx": ("tf2onnx", "onnx")}
# tf2onnx reads this at each conversion: set, its optimizers change the graph itself instead of
# a copy of it made before each of them.
_ONNX_CATCH_ERRORS = "TF2ONNX_CATCH_ERRORS"
_ONNX_CONVERSION = threading.Lock()  # the variable is the process's, set around one conversion


def checked_functions(model, num_samples=DEFAULT_NUM_SAMPLES, metadata=None):
    """The signatures as ``tf.function``\\ s whose bad rows answer NaN (-1 for integer outputs):
    name -> function. ``metadata``: what the export records, whose ``anomaly_threshold`` sets the
    ``score`` signature's."""
    support = model.decoder.likelihood.support  # the values p(x|z) gives a density to
    specs = input_specs(model)

    def rule(name):
        if name == "x":
            return lambda x: graph_checks.valid_images(x, support, model.allow_missing)
        if name == "z":
            return graph_checks.valid_latents
        if name == "label":
            return lambda label: graph_checks.valid_labels(label, model.num_classes)
        return None  # every int64 seed is good

    def masked(fn, names):
        def checked(*inputs):
            valid = [rule(n)(t) for n, t in zip(names, inputs) if rule(n) is not None]
            outputs = fn(*inputs)
            if not valid:
                return outputs
            ok = tf.reduce_all(tf.stack(valid), axis=0)
            return {key: tf.where(tf.reshape(ok, [-1] + [1] * (value.shape.rank - 1)),
                                  value, _bad_value(value.dtype))
                    for key, value in outputs.items()}

        return checked

    return {name: tf.function(masked(fn, [s.name for s in specs[name]]),
                              input_signature=specs[name], autograph=False)
            for name, fn in serving_functions(
                model, num_samples, checked=False,
                score=ScoreSettings.from_metadata(metadata)).items()}


def _bad_value(dtype):
    """What a bad row answers in an output of ``dtype``: NaN, or -1 for integers."""
    return tf.constant(np.nan if dtype.is_floating else -1, dtype)


def tflite_model(model, num_samples=DEFAULT_NUM_SAMPLES, metadata=None):
    """One LiteRT flatbuffer (bytes) holding every signature, of builtin ops only."""
    functions = checked_functions(model, num_samples, metadata)
    module = signature_module(functions)
    # Converted from a SavedModel so that the flatbuffer's signatures keep their names.
    staging = Path(tempfile.mkdtemp(prefix="tfvae-tflite-"))
    try:
        tf.saved_model.save(module, str(staging), signatures=functions,
                            options=SAVE_OPTIONS)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            str(staging), signature_keys=list(functions))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            return converter.convert()
        except Exception as e:  # the converter's ConverterError, whose module is private
            if type(e).__name__ != "ConverterError":
                raise
            raise _unconvertible("tflite", *_tflite_failure(str(e))) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _tflite_failure(message):
    """(signature, what it needs) from the LiteRT converter's error message."""
    signature = re.search(r"failed while converting: '([^']+)'", message)
    ops = re.search(r"TF Select ops: ([^\n]+)", message)
    failed = re.search(r"failed to legalize operation '([^']+)'", message)
    needs = (f"the ops {ops.group(1).strip()}" if ops
             else f"the op {failed.group(1)} in a form" if failed
             else "ops")
    return (signature.group(1) if signature else "a signature"), needs


def _unconvertible(fmt, signature, needs):
    """The error for a model that ``fmt`` cannot hold: one line, as bad input is."""
    runtime = {"tflite": "LiteRT's builtin ops", "onnx": f"ONNX (opset {ONNX_OPSET})"}[fmt]
    return InputError("format", f"a model whose signatures convert to {runtime} (the "
                      "SavedModel export serves every model)",
                      f"{fmt!r} for a model whose {signature!r} signature needs {needs}, "
                      "which it lacks")


def onnx_models(model, num_samples=DEFAULT_NUM_SAMPLES, metadata=None):
    """One serialized ONNX model per signature: name -> bytes."""
    tf2onnx = _require("onnx")
    import onnx

    models = {}
    for name, fn in checked_functions(model, num_samples, metadata).items():
        proto = _onnx_proto(tf2onnx, fn)
        # tf2onnx leaves an op it cannot convert in the graph and says so in its log alone:
        # ONNX Runtime would refuse to load the file.
        try:
            onnx.checker.check_model(proto)
        except onnx.checker.ValidationError as e:
            ops = re.findall(r"No Op registered for (\w+)", str(e))
            raise _unconvertible("onnx", name, f"the op {ops[0]}" if ops
                                 else f"what ONNX refuses ({str(e).splitlines()[0]})") from None
        models[name] = proto.SerializeToString()
    return models


def _onnx_proto(tf2onnx, fn):
    """tf2onnx's model of ``fn``. By default tf2onnx copies the graph before each optimizer, so
    that one that fails leaves it as it was: a quarter of the conversion of the residual
    models. It runs without the copies first, and again with them if an optimizer fails."""
    def convert():
        return tf2onnx.convert.from_function(fn, input_signature=fn.input_signature,
                                             opset=ONNX_OPSET)[0]

    with _ONNX_CONVERSION:
        try:
            with _environment(_ONNX_CATCH_ERRORS, "FALSE"):
                return convert()
        except Exception:  # an optimizer's failure, which the copies would have caught
            # Unset: tf2onnx 1.17 takes any value as "FALSE" (it compares the name to "TRUE").
            with _environment(_ONNX_CATCH_ERRORS, None):
                return convert()


@contextlib.contextmanager
def _environment(name, value):
    """The environment variable ``name`` set to ``value`` (None: unset) within, then as it was."""
    before = os.environ.get(name)
    _set_environment(name, value)
    try:
        yield
    finally:
        _set_environment(name, before)


def _set_environment(name, value):
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def output_paths(fmt, out, model, *, overwrite=False):
    """The files ``fmt`` writes for ``model`` at ``out``, checked before any work: a
    ``.tflite`` file, or a directory of ``SIGNATURE.onnx`` files."""
    if fmt == "tflite":
        return {None: check_output(out, ".tflite", overwrite=overwrite)}
    directory = check_writable_dir(out)
    return {name: check_output(directory / f"{name}.onnx", ".onnx", overwrite=overwrite)
            if directory.is_dir() else directory / f"{name}.onnx"
            for name in input_specs(model)}


def write(model, fmt, out, *, num_samples=DEFAULT_NUM_SAMPLES, overwrite=False, metadata=None):
    """Write ``model`` as ``fmt`` ("tflite" or "onnx") at ``out``; returns the paths written.

    Each file is written atomically; none replaces an existing one unless ``overwrite``.
    ``metadata`` (a run's: :func:`tfvae.export.metadata.run_metadata`) gives the ``score``
    signature the run's anomaly threshold, as the SavedModel's.
    """
    check_choice("format", fmt, _PORTABLE)
    check_int("num_samples", num_samples)
    if fmt == "onnx":
        _require("onnx")
    paths = output_paths(fmt, out, model, overwrite=overwrite)
    if fmt == "tflite":
        return [write_bytes(paths[None], tflite_model(model, num_samples, metadata),
                            overwrite=overwrite)]
    models = onnx_models(model, num_samples, metadata)
    Path(out).mkdir(parents=True, exist_ok=True)
    return [write_bytes(paths[name], data, overwrite=overwrite) for name, data in models.items()]


class LiteRTFormat(ExportFormat):
    """One ``.tflite`` file holding every signature."""

    def check(self, path, *, overwrite=False):
        check_output(path, ".tflite", overwrite=overwrite)

    def write(self, model, path, *, num_samples=DEFAULT_NUM_SAMPLES, overwrite=False,
              metadata=None):
        return write(model, "tflite", path, num_samples=num_samples, overwrite=overwrite,
                     metadata=metadata)[0]


class ONNXFormat(ExportFormat):
    """A directory of ``SIGNATURE.onnx`` files, one per signature."""

    def check(self, path, *, overwrite=False):
        check_writable_dir(path)
        _require("onnx")

    def write(self, model, path, *, num_samples=DEFAULT_NUM_SAMPLES, overwrite=False,
              metadata=None):
        write(model, "onnx", path, num_samples=num_samples, overwrite=overwrite,
              metadata=metadata)
        return Path(path)


def _require(fmt):
    """The converter module of ``fmt``'s extra, or one line naming the extra to install."""
    module, extra = _EXTRAS[fmt]
    try:
        converter = __import__(module)
    except ImportError:
        raise InputError("format", f"{module} for {arg('format', fmt)} (pip install "
                         f"'tfvae[{extra}]')", f"{fmt!r} without {module} installed") from None
    if fmt == "onnx":
        _register_onnx_handlers()
    return converter


_REGISTERED = []


def _register_onnx_handlers():
    """Teach tf2onnx the two ops of TFP's graphs it lacks (1.17): BroadcastArgs, MulNoNan."""
    if _REGISTERED:
        return
    from onnx import TensorProto
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("BroadcastArgs")
    class BroadcastArgs:
        """The shape two shapes broadcast to: that of the sum of zeros of each shape."""

        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            zeros = [ctx.make_node("ConstantOfShape", [ctx.make_node(
                "Cast", [shape], attr={"to": TensorProto.INT64}).output[0]]).output[0]
                for shape in node.input]
            total = ctx.make_node("Add", zeros).output[0]
            shape = ctx.make_node("Shape", [total]).output[0]
            dtype = ctx.get_dtype(node.output[0])
            node.type = "Cast"
            ctx.replace_inputs(node, [shape])
            node.set_attr("to", dtype)

    @tf_op("MulNoNan")
    class MulNoNan:
        """x * y, and 0 where y is 0 (even where x is infinite or NaN)."""

        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            node.type = "Mul"
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[1]))
            zero = ctx.make_const(utils.make_name("zero"), np.array(0, dtype)).output[0]
            is_zero = ctx.make_node("Equal", [node.input[1], zero]).output[0]
            where = ctx.make_node("Where", [is_zero, zero, node.output[0]])
            ctx.insert_node_on_output(where, node.output[0])

    _REGISTERED.append((BroadcastArgs, MulNoNan))
