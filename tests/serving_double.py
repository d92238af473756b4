"""A test double of TensorFlow Serving, for tests only: production serving is TF Serving itself.

TF Serving ships as Docker images and apt packages only, so the client is tested against this
stand-in. It loads every version under a model's base directory with the TF1 SavedModel loader
(the C++ loader TF Serving's SavedModelBundle uses), runs signatures by their tensor names in a
session, and answers on 127.0.0.1 by TF Serving's rules:

- gRPC (``tensorflow-serving-api``): PredictionService ``Predict`` and ``GetModelMetadata``,
  ModelService ``GetModelStatus``; a tensor's dtype must be the signature's exactly;
- REST: ``POST /v1/models/NAME[/versions/N]:predict`` in the row (``instances`` ->
  ``predictions``) and columnar (``inputs`` -> ``outputs``) formats, JSON values converted to the
  signature's dtypes; ``GET /v1/models/NAME[/versions/N]`` (status) and ``.../metadata``;
- errors: TF Serving's status codes and messages (``{"error": ...}`` bodies over REST, with its
  HTTP status mapping), and the server keeps answering after each.

No request is validated here beyond what TF Serving itself checks: bad pixels and shapes reach
the graph, whose own checks answer, as they would in TF Serving.
"""

import base64
import json
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

DEFAULT_SIGNATURE = "serving_default"
_CODES = {code.value[0]: code for code in grpc.StatusCode}
# TF Serving's ToHTTPStatusCode.
_HTTP = {
    grpc.StatusCode.OK: 200, grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500, grpc.StatusCode.UNAUTHENTICATED: 401,
}
_PREDICT_PATH = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:/versions/(\d+))?:(classify|regress|predict)")
_MODEL_PATH = re.compile(r"(?i)/v1/models(?:/([^/:]+))?(?:/versions/(\d+))?(?:/(metadata))?")


class ServingStatus(Exception):
    """A non-OK status: a ``grpc.StatusCode`` and TF Serving's message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


def _invalid(message):
    return ServingStatus(grpc.StatusCode.INVALID_ARGUMENT, message)


class Servable:
    """One loaded version: a session holding the SavedModel's serving graph."""

    def __init__(self, path):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            self.meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"],
                                                                   str(path))

    def run(self, feeds, fetches):
        """Run the graph on tensors as they are, the way TF Serving's C++ Session::Run does.

        Python's Session.run would cast each feed to its placeholder's dtype and check its
        shape itself; TF Serving does neither. This calls the C++ run that Session.run wraps, so
        TensorFlow answers a float64 feed or a wrong shape exactly as it does in TF Serving.
        """
        feed = {self.graph.get_tensor_by_name(name)._as_tf_output(): value
                for name, value in feeds.items()}
        fetch = [self.graph.get_tensor_by_name(name)._as_tf_output() for name in fetches]
        try:
            return self.session._call_tf_sessionrun(None, feed, fetch, [], None)
        except tf.errors.OpError as exc:
            raise ServingStatus(_CODES[exc.error_code], exc.message) from None

    def close(self):
        self.session.close()


class ModelServer:
    """TF Serving's behavior over ``models`` (name -> base directory of integer versions)."""

    def __init__(self, models):
        self.servables = {}
        for name, base in models.items():
            versions = sorted(int(p.name) for p in Path(base).iterdir()
                              if p.is_dir() and p.name.isdigit())
            self.servables[name] = {v: Servable(Path(base) / str(v)) for v in versions}
        self._grpc = self._http = None

    # -- the servable a request names ---------------------------------------------------------

    def servable(self, model_spec):
        name = model_spec.name
        versions = self.servables.get(name, {})
        if model_spec.HasField("version"):
            version = model_spec.version.value
            request = f"Specific({name}, {version})"
        else:
            version = max(versions, default=None)
            request = f"Latest({name})"
        if version not in versions:
            raise ServingStatus(grpc.StatusCode.NOT_FOUND,
                                f"Servable not found for request: {request}")
        return version, versions[version]

    # -- PredictionService / ModelService -----------------------------------------------------

    def predict(self, request):
        version, servable = self.servable(request.model_spec)
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signatures = servable.meta_graph.signature_def
        if signature_name not in signatures:
            raise ServingStatus(grpc.StatusCode.FAILED_PRECONDITION,
                                f'Serving signature key "{signature_name}" not found.')
        signature = signatures[signature_name]
        sent, expected = set(request.inputs), set(signature.inputs)
        if sent != expected:
            raise _invalid(
                f"input size does not match signature: {len(sent)}!={len(expected)} "
                f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
                f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
                f"Missing but required: {{{','.join(sorted(expected - sent))}}}.")
        feeds = {}
        for alias in sorted(sent):
            try:
                feeds[signature.inputs[alias].name] = tf.make_ndarray(request.inputs[alias])
            except Exception as exc:  # a malformed TensorProto
                raise _invalid(f"Input {alias}: {exc}") from None
        aliases = list(request.output_filter) or list(signature.outputs)
        for alias in aliases:
            if alias not in signature.outputs:
                known = ",".join(sorted(signature.outputs))
                raise _invalid(f"output tensor alias not found in signature: {alias} Outputs "
                               f"expected to be in the set {{{known}}}.")
        values = servable.run(feeds, [signature.outputs[a].name for a in aliases])
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = signature_name
        for alias, value in zip(aliases, values):
            response.outputs[alias].CopyFrom(tf.make_tensor_proto(value))
        return response

    def metadata(self, request):
        fields = list(request.metadata_field)
        if not fields:
            raise _invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for field in fields:
            if field != "signature_def":
                raise _invalid(f"Metadata field {field} is not supported")
        version, servable = self.servable(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature in servable.meta_graph.signature_def.items():
            signature_map.signature_def[name].CopyFrom(signature)
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def status(self, request):
        name = request.model_spec.name
        versions = self.servables.get(name, {})
        if request.model_spec.HasField("version"):
            wanted = [request.model_spec.version.value]
            if wanted[0] not in versions:
                raise ServingStatus(grpc.StatusCode.NOT_FOUND,
                                    f"Could not find version {wanted[0]} of model {name}")
        else:
            wanted = sorted(versions)
            if not wanted:
                raise ServingStatus(grpc.StatusCode.NOT_FOUND,
                                    f"Could not find any versions of model {name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in wanted:
            entry = response.model_version_status.add()
            entry.version = version
            entry.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response

    # -- REST ---------------------------------------------------------------------------------

    def rest(self, method, path, body):
        """(HTTP status, JSON-able reply) for one REST request, as TF Serving answers it."""
        try:
            return 200, self._rest(method, path, body)
        except ServingStatus as status:
            return _HTTP[status.code], {"error": status.message}

    def _rest(self, method, path, body):
        match = _PREDICT_PATH.fullmatch(path)
        if method == "POST" and match and match.group(3).lower() == "predict":
            request = predict_pb2.PredictRequest()
            request.model_spec.name = match.group(1)
            if match.group(2):
                request.model_spec.version.value = int(match.group(2))
            row = self._request_from_json(body, request)
            return _json_from_outputs(self.predict(request).outputs, row)
        match = _MODEL_PATH.fullmatch(path)
        if method == "GET" and match:
            if not match.group(1):
                raise _invalid("Missing model name in request.")
            if match.group(3):
                request = get_model_metadata_pb2.GetModelMetadataRequest(
                    metadata_field=["signature_def"])
                _fill_spec(request.model_spec, match)
                return _proto_json(self.metadata(request))
            request = get_model_status_pb2.GetModelStatusRequest()
            _fill_spec(request.model_spec, match)
            return _proto_json(self.status(request))
        raise _invalid(f"Malformed request: {method} {path}")

    def _request_from_json(self, body, request):
        """Fill ``request`` from a REST predict body; True for the row format."""
        try:
            doc = json.loads(body) if body else None
        except ValueError as exc:
            raise _invalid(f"JSON Parse error: {exc}") from None
        if doc is None:
            raise _invalid("JSON Parse error: The document is empty")
        if not isinstance(doc, dict):
            raise _invalid(f"JSON Value: {body} Is not object")
        signature_name = doc.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise _invalid(f"JSON Value: {body} not formatted correctly. 'signature_name' key "
                           "must be a string value.")
        request.model_spec.signature_name = signature_name
        _, servable = self.servable(request.model_spec)
        name = signature_name or DEFAULT_SIGNATURE
        if name not in servable.meta_graph.signature_def:
            raise _invalid(f'Serving signature name: "{name}" not found in signature def')
        infos = servable.meta_graph.signature_def[name].inputs
        dtypes = {alias: tf.dtypes.as_dtype(info.dtype) for alias, info in infos.items()}
        if ("instances" in doc) == ("inputs" in doc):
            raise _invalid("Missing 'inputs' or 'instances' key" if "inputs" not in doc else
                           "Not formatted correctly expecting only one of 'inputs' or "
                           "'instances' keys to exist")
        if "instances" in doc:
            columns = _columns_from_instances(doc["instances"], dtypes)
        else:
            columns = _columns_from_inputs(doc["inputs"], dtypes)
        for alias, value in columns.items():
            request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
        return "instances" in doc

    # -- servers ------------------------------------------------------------------------------

    def start(self):
        """Serve gRPC and REST on free 127.0.0.1 ports: ``grpc_url`` and ``rest_url``."""
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionServicer(self), self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelServicer(self),
                                                                   self._grpc)
        grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _rest_handler(self))
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self.grpc_url = f"grpc://127.0.0.1:{grpc_port}"
        self.rest_url = f"http://127.0.0.1:{self._http.server_address[1]}"
        return self

    def stop(self):
        if self._grpc is not None:
            self._grpc.stop(grace=None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        for versions in self.servables.values():
            for servable in versions.values():
                servable.close()


# ------------------------------------------------------------------------------ JSON rules


def _json_value(value, dtype):
    """One JSON scalar as ``dtype``, by TF Serving's conversion rules."""
    if dtype in (tf.float32, tf.float64):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(value, dtype)
        return value
    if dtype in (tf.int64, tf.int32):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(value, dtype)
        return value
    if dtype == tf.string:  # text, or {"b64": ...} for bytes that are not UTF-8
        if isinstance(value, dict) and set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode()
    raise ServingStatus(grpc.StatusCode.UNIMPLEMENTED,
                        f"Conversion of JSON Value: {json.dumps(value)} to type: {dtype.name}")


def _type_error(value, dtype):
    kind = {str: "String", dict: "Object", list: "Array", bool: "True" if value else "False",
            type(None): "Null"}.get(type(value), "Number")
    return _invalid(f"JSON Value: {json.dumps(value)} Type: {kind} is not of expected type: "
                    f"{dtype.name}")


def _dense(value, dtype):
    """A nested JSON list -> ndarray of ``dtype``; ragged lists are errors, as in TF Serving."""
    shape = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]

    def walk(item, level):
        if not isinstance(item, list):
            if level != len(shape):
                raise _invalid(f"JSON Value: {json.dumps(item)} found at incorrect level: "
                               f"{level + 1} in the JSON DOM. Expected at level: {len(shape)}")
            return [_json_value(item, dtype)]
        if level >= len(shape):
            raise _invalid(f"Encountered list at unexpected level: {level} expected < "
                           f"{len(shape)}")
        if len(item) != shape[level]:
            raise _invalid(f"Encountered list at unexpected size: {len(item)} at level: {level}"
                           f" expected size: {shape[level]}")
        return [v for sub in item for v in walk(sub, level + 1)]

    flat = walk(value, 0)
    return np.array(flat, dtype=dtype.as_numpy_dtype).reshape(shape)


def _columns_from_instances(instances, dtypes):
    if not isinstance(instances, list):
        raise _invalid("JSON Value: ... Excepting 'instances' to be an list/array")
    if not instances:
        raise _invalid("JSON Value: ... No values in 'instances' array")
    named = isinstance(instances[0], dict)
    if not named and len(dtypes) > 1:
        raise _invalid("instances is a plain list, but expecting list of objects as multiple "
                       "input tensors required as per tensorinfo_map")
    rows = {alias: [] for alias in dtypes}
    for i, item in enumerate(instances):
        if named != isinstance(item, dict):
            got = "object but got list" if named else "value/list but got object"
            raise _invalid(f"Expecting {got} at item {i} of input list")
        values = item if named else {next(iter(dtypes)): item}
        if set(values) != set(dtypes):
            raise _invalid(f"Failed to process element: {i} of 'instances' list. JSON object: "
                           f"{json.dumps(item)} keys must be equal to: {','.join(sorted(dtypes))}")
        for alias, value in values.items():
            try:
                tensor = _dense(value, dtypes[alias])
            except ServingStatus as status:
                raise _invalid(f"Failed to process element: {i} of 'instances' list. Error: "
                               f"INVALID_ARGUMENT: {status.message}") from None
            if rows[alias] and tensor.shape != rows[alias][0].shape:
                raise _invalid(f"Expecting shape {list(rows[alias][0].shape)} but got: "
                               f"{list(tensor.shape)}")
            rows[alias].append(tensor)
    return {alias: np.stack(values) for alias, values in rows.items()}


def _columns_from_inputs(inputs, dtypes):
    if not isinstance(inputs, dict):
        if len(dtypes) > 1:
            raise _invalid("inputs is a plain value/list, but expecting an object as multiple "
                           "input tensors required as per tensorinfo_map")
        alias = next(iter(dtypes))
        return {alias: _dense(inputs, dtypes[alias])}
    columns = {}
    for alias, dtype in dtypes.items():
        if alias not in inputs:
            raise _invalid(f"Missing named input: {alias} in 'inputs' object.")
        columns[alias] = _dense(inputs[alias], dtype)
    return columns


def _json_from_outputs(outputs, row):
    arrays = {alias: tf.make_ndarray(proto) for alias, proto in outputs.items()}
    if not row:
        if len(arrays) == 1:
            return {"outputs": next(iter(arrays.values())).tolist()}
        return {"outputs": {alias: value.tolist() for alias, value in arrays.items()}}
    sizes = {value.shape[0] if value.ndim else None for value in arrays.values()}
    if len(sizes) != 1 or None in sizes:
        raise _invalid("Tensors in the output must have the same batch size (first dimension)"
                       " to be returned in the row format")
    if len(arrays) == 1:
        return {"predictions": next(iter(arrays.values())).tolist()}
    lists = {alias: value.tolist() for alias, value in arrays.items()}
    return {"predictions": [{alias: rows[i] for alias, rows in lists.items()}
                            for i in range(sizes.pop())]}


def _fill_spec(spec, match):
    spec.name = match.group(1)
    if match.group(2):
        spec.version.value = int(match.group(2))


def _proto_json(message):
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


# -------------------------------------------------------------------------- the transports


class _PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server):
        self.server = server

    def Predict(self, request, context):
        return _answer(context, self.server.predict, request)

    def GetModelMetadata(self, request, context):
        return _answer(context, self.server.metadata, request)


class _ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, server):
        self.server = server

    def GetModelStatus(self, request, context):
        return _answer(context, self.server.status, request)


def _answer(context, method, request):
    try:
        return method(request)
    except ServingStatus as status:
        context.abort(status.code, status.message)


def _rest_handler(server):
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            status, reply = server.rest(method, self.path.split("?")[0], body)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._reply("GET")

        def do_POST(self):
            self._reply("POST")

        def log_message(self, *args):
            pass

    return Handler
