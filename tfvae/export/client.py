"""A client for a tfvae model served by TF Serving, over its REST API or its gRPC API.

``Client("http://HOST:8501", "mnist_vae")`` speaks REST (``/v1/models/NAME[/versions/N]:predict``,
model status and metadata); ``Client("grpc://HOST:8500", "mnist_vae")`` speaks gRPC through
``tensorflow-serving-api``'s PredictionService and ModelService (``pip install
tensorflow-serving-api``). Both return numpy arrays keyed by the signature's output names:

>>> client = Client("http://localhost:8501", "mnist_vae")
>>> client.encode(images)["z_mean"]          # images: [B, 28, 28, 1] in [0, 1]
>>> client.sample([0, 1, 2])["x_mean"]       # one image per seed, the same on every server

The signature helpers cast inputs to the signature's dtypes (float32 images and latents, int64
seeds); ``predict`` sends arrays as they are, so TF Serving's own dtype rules apply. A request the
server refuses raises :class:`ServingError` with the server's message.
"""

import contextlib
import json
import math
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from tfvae.checks import MAX_INT64, check_int, check_labels, check_name, check_number
from tfvae.errors import InputError

FORMATS = ("row", "columnar")
# The most a reply is read: status and metadata, and predictions beyond what their rows need
# (``per_row``); an error's text.
REPLY_LIMIT = 4 * 2 ** 20
ERROR_LIMIT = 64 * 2 ** 10
_BYTES_PER_NUMBER = 32
_URL_EXPECTED = "http://HOST:PORT (REST, port 8501) or grpc://HOST:PORT (gRPC, port 8500)"
_INT64 = np.iinfo(np.int64)
# A socket's timeout must fit the C library's; a day is more than any request needs.
MAX_TIMEOUT = 86400.0


class ServingError(RuntimeError):
    """The server refused a request: ``code`` (gRPC status name or "HTTP <status>"), ``message``."""

    def __init__(self, code, message, http_status=None):
        self.code = code
        self.message = message
        self.http_status = http_status
        super().__init__(f"{code}: {message}")


class Client:
    """A model ``model_name`` (``version``: a number, or None for the latest) behind ``url``."""

    def __init__(self, url, model_name, version=None, timeout=60.0):
        check_name("--model-name", model_name)
        version = check_int("--version", version, maximum=MAX_INT64, optional=True)
        timeout = check_number("--timeout", timeout, above=0, below=MAX_TIMEOUT)
        parsed = urllib.parse.urlsplit(url if isinstance(url, str) else "")
        if parsed.scheme not in ("http", "https", "grpc") or not parsed.hostname:
            raise InputError("--url", _URL_EXPECTED, repr(url))
        try:
            parsed.port
        except ValueError:
            raise InputError("--url", _URL_EXPECTED, repr(url)) from None
        self.url, self.model_name, self.version, self.timeout = url, model_name, version, timeout
        self.protocol = "grpc" if parsed.scheme == "grpc" else "rest"
        self._transport = (_Grpc(parsed.netloc, timeout) if self.protocol == "grpc"
                           else _Rest(f"{parsed.scheme}://{parsed.netloc}", timeout))
        self._signatures = None

    # -- tfvae's signatures ----------------------------------------------------------------

    def encode(self, x, labels=None, **kwargs):
        """q(z|x) of images ``x`` [B, H, W, C]: ``z_mean``, ``z_stddev`` [B, D]. ``labels``
        [B]: a conditional model's classes, here and in every signature."""
        return self.predict(_with_labels({"x": _floats(x, "x")}, labels), "encode", **kwargs)

    def decode(self, z, labels=None, **kwargs):
        """The mean of p(x|z) for latents ``z`` [B, D]: ``x_mean`` [B, H, W, C]."""
        outputs = self.predict(_with_labels({"z": _floats(z, "z")}, labels), "decode", **kwargs)
        if "x_mean" not in outputs:
            raise InputError("--url", "a server of a tfvae model (its decode gives x_mean)",
                             f"{self.url!r}, whose decode gives {sorted(outputs)}")
        return outputs["x_mean"]

    def sample(self, seeds, labels=None, **kwargs):
        """One draw per seed: ``z`` [B, D] ~ p(z) and ``x_mean`` [B, H, W, C]."""
        return self.predict(_with_labels({"seed": _seeds(seeds)}, labels), "sample", **kwargs)

    def reconstruct(self, x, labels=None, **kwargs):
        """``x_mean`` at z = ``z_mean`` for images ``x``."""
        return self.predict(_with_labels({"x": _floats(x, "x")}, labels), "reconstruct",
                            **kwargs)

    def log_likelihood(self, x, seeds, labels=None, **kwargs):
        """Per-image ``elbo`` and importance-sampled ``log_px`` (nats), one seed per image."""
        return self.predict(_with_labels({"x": _floats(x, "x"), "seed": _seeds(seeds)}, labels),
                            "log_likelihood", **kwargs)

    # -- TF Serving's API --------------------------------------------------------------------

    def predict(self, inputs, signature="serving_default", format="row"):
        """Run ``signature`` on ``inputs`` (name -> array); returns output name -> array.

        ``format`` picks REST's row (``instances``) or columnar (``inputs``) request; gRPC has
        one format and ignores it.
        """
        if format not in FORMATS:
            raise InputError("format", f"one of {FORMATS}", repr(format))
        if not isinstance(inputs, dict) or not inputs:
            raise InputError("inputs", "a dict of input name -> array", repr(type(inputs)))
        inputs = {name: np.asarray(value) for name, value in inputs.items()}
        if self.protocol == "grpc":
            return self._transport.predict(self.model_name, self.version, signature, inputs)
        # JSON carries neither a single output's name nor dtypes: take both from the signature.
        signatures = self.signatures()
        infos = signatures.get(signature, {}).get("outputs", {})
        # A signature the metadata does not list: the server itself says so.
        outputs = self._transport.predict(self.model_name, self.version, signature, inputs,
                                          format, _row_bytes(infos or {signature: {}}))
        if not infos:
            raise InputError("--url", f"a server whose metadata lists the signature "
                             f"{signature!r}", f"{self.url!r}, listing {sorted(signatures)}")
        if not isinstance(outputs, dict) and len(infos) == 1:
            outputs = {next(iter(infos)): outputs}
        rows = {len(value) if value.ndim else None for value in inputs.values()}
        if (not isinstance(outputs, dict) or not set(outputs) <= set(infos)
                or any(value.ndim == 0 or {len(value)} != rows for value in outputs.values())):
            got = (f"outputs {sorted(outputs)} of shapes {[v.shape for v in outputs.values()]}"
                   if isinstance(outputs, dict) else "outputs without names")
            raise InputError("--url", f"a reply of {signature}'s outputs {sorted(infos)}, one "
                             "row per input", f"{self.url!r}, which answered {got}")
        try:
            return {name: value.astype(_numpy_dtype(infos[name]["dtype"]), copy=False)
                    for name, value in outputs.items()}
        except (ValueError, TypeError) as exc:
            raise InputError("--url", f"a reply of {signature}'s outputs with their dtypes",
                             f"{self.url!r}, which answered another ({exc})") from None

    def status(self):
        """The model's versions: a list of {"version", "state", "error_code", "error_message"}."""
        return self._transport.status(self.model_name, self.version)

    def metadata(self):
        """The served version and its signatures: {"version", "signatures": {name: {"inputs",
        "outputs"}}}, each input/output {"dtype": "DT_FLOAT", "shape": [-1, 28, 28, 1]}."""
        return self._transport.metadata(self.model_name, self.version)

    def signatures(self):
        if self._signatures is None:
            self._signatures = self.metadata()["signatures"]
        return self._signatures

    def close(self):
        self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ----------------------------------------------------------------------------------- REST


class _Rest:
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


class _Grpc:
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
        raise InputError("--url", f"a TF Serving REST API answering at most {limit:,} bytes",
                         f"{url!r}, which answered {int(length):,} bytes")
    data = response.read(limit + 1)
    if len(data) > limit:
        raise InputError("--url", f"a TF Serving REST API answering at most {limit:,} bytes",
                         f"{url!r}, which answered more")
    try:
        reply = json.loads(data)
    except (ValueError, RecursionError):
        kind = response.headers.get("Content-Type") or "no content type"
        start = data[:40].decode(errors="replace")
        raise InputError("--url", "a TF Serving REST API answering JSON",
                         f"{url!r}, which answered {kind}: {start!r}") from None
    if not isinstance(reply, dict):
        raise InputError("--url", "a TF Serving REST API answering a JSON object",
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
        raise InputError("--url", f"a TF Serving REST API answering {expected}",
                         f"{url!r}, which answered JSON without them ({type(exc).__name__}: "
                         f"{str(exc)[:80]})") from None


def _numbers(values):
    """A JSON array of numbers as a numpy array (ragged or non-numeric: ValueError)."""
    array = np.array(values if isinstance(values, list) else list(values))
    if array.dtype.kind not in "biuf":
        raise ValueError(f"an array of {array.dtype}")
    return array


def _row_bytes(infos):
    """The most bytes one row of these outputs takes in JSON (an unknown dimension: 4096)."""
    shapes = [info.get("shape") or [0, 4096] for info in infos.values()]
    numbers = sum(math.prod(d if d and d > 0 else 4096 for d in shape[1:]) for shape in shapes)
    return numbers * _BYTES_PER_NUMBER


def _floats(values, name):
    try:
        return np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(name, "an array of numbers", f"{type(values).__name__} ({exc})") from None


def _seeds(seeds):
    array = np.asarray(seeds)
    if array.ndim == 0:
        array = array[np.newaxis]
    if (array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer)
            or array.min() < _INT64.min or array.max() > _INT64.max):
        raise InputError("seeds", "a non-empty list of int64 integers", repr(seeds))
    return array.astype(np.int64)


def _numpy_dtype(name):
    """"DT_FLOAT" -> numpy.float32."""
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2

    return tf.dtypes.as_dtype(types_pb2.DataType.Value(name)).as_numpy_dtype


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


def _with_labels(inputs, labels):
    """``inputs`` with a conditional model's ``label`` input (int64, one per row) when given."""
    if labels is None:
        return inputs
    rows = len(next(iter(inputs.values())))
    return {**inputs, "label": check_labels("labels", labels, count=rows).astype(np.int64)}
