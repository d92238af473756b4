"""How :class:`tfvae.export.client.Client` talks to TF Serving: its REST API (JSON over HTTP,
every reply bounded in size and checked in shape) and its gRPC API (``tensorflow-serving-api``).
Both answer the client's three questions, predict, status and metadata, in the same form."""

import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from tfvae.errors import InputError

# The most a reply is read: status and metadata, and predictions beyond what their rows need
# (``per_row``); an error's text.
REPLY_LIMIT = 4 * 2 ** 20
ERROR_LIMIT = 64 * 2 ** 10


class ServingError(RuntimeError):
    """The server refused a request: ``code`` (gRPC status name or "HTTP <status>"), ``message``."""

    def __init__(self, code, message, http_status=None):
        self.code = code
        self.message = message
        self.http_status = http_status
        super().__init__(f"{code}: {message}")


# ----------------------------------------------------------------------------------- REST


class RestTransport:
    """TF Serving's REST API at ``base`` (``http(s)://HOST:PORT``)."""

    def __init__(self, base, timeout):
        self.base, self.timeout = base, timeout

    def _path(self, model_name, version):
        path = f"{self.base}/v1/models/{urllib.parse.quote(model_name, safe='')}"
        return path if version is None else f"{path}/versions/{version}"

    def _call(self, url, body=None, limit=REPLY_LIMIT):
        """The JSON object the server answers, read no further than ``limit`` bytes."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return _json_reply(url, response, limit)
        except urllib.error.HTTPError as exc:
            text = exc.read(ERROR_LIMIT).decode(errors="replace")
            try:
                message = json.loads(text)["error"]
            except (ValueError, KeyError, TypeError):
                message = text or exc.reason
            raise ServingError(f"HTTP {exc.code}", message, http_status=exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise ServingError("DEADLINE_EXCEEDED", f"no answer from {url} within "
                                   f"{self.timeout:g} s") from None
            raise ServingError("UNAVAILABLE", f"cannot reach {url}: {reason}") from None

    def predict(self, model_name, version, signature, inputs, format, per_row):
        body = {"signature_name": signature}
        if format == "columnar":
            body["inputs"] = {name: value.tolist() for name, value in inputs.items()}
        elif len(inputs) == 1:
            body["instances"] = next(iter(inputs.values())).tolist()
        else:
            sizes = {len(value) if value.ndim else None for value in inputs.values()}
            if len(sizes) != 1 or None in sizes:
                raise InputError("inputs", "arrays with one shared batch dimension for the row "
                                 "format", {k: v.shape for k, v in inputs.items()})
            lists = {name: value.tolist() for name, value in inputs.items()}
            body["instances"] = [{name: rows[i] for name, rows in lists.items()}
                                 for i in range(sizes.pop())]
        url = f"{self._path(model_name, version)}:predict"
        # Numbers in JSON take at most ~32 bytes each: the limit grows with the request's rows.
        count = max((len(v) for v in inputs.values() if v.ndim), default=1)
        reply = self._call(url, body, limit=REPLY_LIMIT + count * per_row)
        with _unexpected(url, "predictions or outputs, arrays of numbers"):
            if "predictions" in reply:
                rows = reply["predictions"]
                if rows and isinstance(rows[0], dict):
                    return {name: _numbers(row[name] for row in rows) for name in rows[0]}
                return _numbers(rows)
            outputs = reply["outputs"]
            if isinstance(outputs, dict):
                return {name: _numbers(value) for name, value in outputs.items()}
            return _numbers(outputs)

    def status(self, model_name, version):
        url = self._path(model_name, version)
        reply = self._call(url)
        with _unexpected(url, "model_version_status, a list of versions"):
            return [_version_status(entry) for entry in reply["model_version_status"]]

    def metadata(self, model_name, version):
        url = f"{self._path(model_name, version)}/metadata"
        reply = self._call(url)
        with _unexpected(url, "model_spec and metadata.signature_def"):
            return _metadata(reply["model_spec"], reply["metadata"]["signature_def"])

    def close(self):
        pass


# ----------------------------------------------------------------------------------- gRPC


class GrpcTransport:
    """TF Serving's gRPC API at ``target`` (``HOST:PORT``)."""

    def __init__(self, target, timeout):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.grpc, self.timeout = grpc, timeout
        self.channel = grpc.insecure_channel(target)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def _spec(self, spec, model_name, version, signature=None):
        spec.name = model_name
        if version is not None:
            spec.version.value = version
        if signature is not None:
            spec.signature_name = signature

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self.grpc.RpcError as exc:
            raise ServingError(exc.code().name, exc.details()) from None

    def predict(self, model_name, version, signature, inputs):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model_name, version, signature)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = self._call(self.prediction.Predict, request)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def status(self, model_name, version):
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model_name, version)
        response = self._call(self.models.GetModelStatus, request)
        return [_version_status(json_format.MessageToDict(entry, preserving_proto_field_name=True))
                for entry in response.model_version_status]

    def metadata(self, model_name, version):
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, model_name, version)
        response = self._call(self.prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return _metadata(json_format.MessageToDict(response.model_spec,
                                                   preserving_proto_field_name=True),
                         json_format.MessageToDict(signature_map,
                                                   preserving_proto_field_name=True))

    def close(self):
        self.channel.close()


# ------------------------------------------------------------------------------- helpers


def _json_reply(url, response, limit):
    """The JSON object of an HTTP ``response``, refused (InputError naming ``url``) if longer
    than ``limit`` bytes or not a JSON object."""
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise InputError("url", f"a TF Serving REST API answering at most {limit:,} bytes",
                         f"{url!r}, which answered {int(length):,} bytes")
    data = response.read(limit + 1)
    if len(data) > limit:
        raise InputError("url", f"a TF Serving REST API answering at most {limit:,} bytes",
                         f"{url!r}, which answered more")
    try:
        reply = json.loads(data)
    except (ValueError, RecursionError):
        kind = response.headers.get("Content-Type") or "no content type"
        start = data[:40].decode(errors="replace")
        raise InputError("url", "a TF Serving REST API answering JSON",
                         f"{url!r}, which answered {kind}: {start!r}") from None
    if not isinstance(reply, dict):
        raise InputError("url", "a TF Serving REST API answering a JSON object",
                         f"{url!r}, which answered a JSON {type(reply).__name__}")
    return reply


@contextlib.contextmanager
def _unexpected(url, expected):
    """Turn what reading an unexpected JSON reply raises into one InputError naming ``url``."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError("url", f"a TF Serving REST API answering {expected}",
                         f"{url!r}, which answered JSON without them ({type(exc).__name__}: "
                         f"{str(exc)[:80]})") from None


def _version_status(entry):
    status = entry.get("status", {})
    return {"version": int(entry["version"]), "state": entry.get("state", ""),
            "error_code": status.get("error_code", "OK"),
            "error_message": status.get("error_message", "")}


def _tensor_info(info):
    shape = info.get("tensor_shape", {})
    dims = None if shape.get("unknown_rank") else [int(d.get("size", 0))
                                                   for d in shape.get("dim", [])]
    return {"dtype": info.get("dtype"), "shape": dims}


def _metadata(model_spec, signature_map):
    """Proto-JSON of a ModelSpec and a SignatureDefMap -> {"version", "signatures"}."""
    signatures = {
        name: {"inputs": {k: _tensor_info(v) for k, v in sig.get("inputs", {}).items()},
               "outputs": {k: _tensor_info(v) for k, v in sig.get("outputs", {}).items()},
               "method_name": sig.get("method_name")}
        for name, sig in signature_map.get("signature_def", {}).items()
        if not name.startswith("__")
    }
    version = model_spec.get("version")
    return {"version": None if version is None else int(version), "signatures": signatures}


def _numbers(values):
    """A JSON array of numbers as a numpy array (ragged or non-numeric: ValueError)."""
    array = np.array(values if isinstance(values, list) else list(values))
    if array.dtype.kind not in "biuf":
        raise ValueError(f"an array of {array.dtype}")
    return array
