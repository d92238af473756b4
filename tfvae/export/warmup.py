"""TF Serving's warmup requests for an export: ``assets.extra/tf_serving_warmup_requests``, a
TFRecord of ``tensorflow.serving.PredictionLog``s that TF Serving replays when it loads a version,
before it answers the first request, so that no client waits for the graphs' first run.

Each SignatureDef gets one PredictRequest of one row of valid input built from its
``tf.TensorSpec``s (0.5 for float inputs, 0 for integer ones), so new inputs need no change here;
text inputs, which no spec can fill validly, are given. The records are encoded from protobuf's
wire format with TensorFlow's own ``TensorProto``, so an export needs nothing beyond TensorFlow
(the tests parse them with ``tensorflow_serving.apis``).
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"  # where TF Serving looks


def warmup_inputs(specs):
    """One row of valid input per ``tf.TensorSpec``: name -> numpy array of the spec's dtype.

    0.5 is a valid pixel of either likelihood and a finite latent; 0 a valid seed (or label).
    Unknown dimensions past the batch's are taken as 1.
    """
    inputs = {}
    for spec in specs:
        shape = [1] + [1 if d is None else d for d in spec.shape[1:]]
        value = 0.5 if spec.dtype.is_floating else 0
        inputs[spec.name] = np.full(shape, value, spec.dtype.as_numpy_dtype)
    return inputs


def warmup_records(specs, model_name, given=None):
    """Serialized ``tensorflow.serving.PredictionLog``s: one PredictRequest per SignatureDef of
    ``specs`` (signature name -> its inputs' ``tf.TensorSpec``s); ``given`` (signature name ->
    input name -> a row) holds the inputs a spec alone cannot make valid (text)."""
    # Encoded field by field (the numbers of tensorflow_serving/apis' .proto files) so that the
    # export needs no tensorflow-serving-api; the tests parse the records with it.
    records = []
    for signature, signature_specs in specs.items():
        # ModelSpec: name = 1, signature_name = 3.
        model_spec = _field(1, model_name.encode()) + _field(3, signature.encode())
        request = _field(1, model_spec)  # PredictRequest.model_spec = 1
        inputs = {**warmup_inputs(signature_specs), **(given or {}).get(signature, {})}
        for name, value in inputs.items():
            # PredictRequest.inputs = 2, a map: entries of key = 1, value = 2 (a TensorProto).
            tensor = tf.make_tensor_proto(value).SerializeToString()
            request += _field(2, _field(1, name.encode()) + _field(2, tensor))
        # PredictionLog.predict_log = 6; PredictLog.request = 1.
        records.append(_field(6, _field(1, request)))
    return records


def _field(number, payload):
    """A length-delimited protobuf field: its key (wire type 2), the length, the bytes."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def write_warmup(specs, version_dir, model_name, given=None):
    """Write the warmup records of ``specs`` (and ``given``, see :func:`warmup_records`) into the
    SavedModel at ``version_dir``."""
    path = Path(version_dir) / WARMUP_FILE
    path.parent.mkdir()
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in warmup_records(specs, model_name, given):
            writer.write(record)
