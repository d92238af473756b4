"""A client for a tfvae model served by TF Serving, over its REST API or its gRPC API.

``Client("http://HOST:8501", "mnist_vae")`` speaks REST (``/v1/models/NAME[/versions/N]:predict``,
model status and metadata); ``Client("grpc://HOST:8500", "mnist_vae")`` speaks gRPC through
``tensorflow-serving-api``'s PredictionService and ModelService (``pip install
tensorflow-serving-api``). Both return numpy arrays keyed by the signature's output names:

>>> client = Client("http://localhost:8501", "mnist_vae")
>>> client.encode(images)["z_mean"]          # images: [B, 28, 28, 1] in [0, 1]
>>> client.sample([0, 1, 2])["x_mean"]       # one image per seed, the same on every server
>>> client.score(rows, seeds=0)["score"]      # anomaly scores (and "anomaly" with a threshold)

The signature helpers cast inputs to the signature's dtypes (float32 images and latents, int64
seeds); ``predict`` sends arrays as they are, so TF Serving's own dtype rules apply. A request the
server refuses raises :class:`ServingError` with the server's message.
"""

import math
import urllib.parse

import numpy as np

from tfvae.checks import MAX_INT64, check_int, check_labels, check_name, check_number
from tfvae.errors import InputError
from tfvae.export.transports import ServingError, GrpcTransport, RestTransport

__all__ = ["Client", "ServingError", "FORMATS"]

FORMATS = ("row", "columnar")
_BYTES_PER_NUMBER = 32
_URL_EXPECTED = "http://HOST:PORT (REST, port 8501) or grpc://HOST:PORT (gRPC, port 8500)"
_INT64 = np.iinfo(np.int64)
# A socket's timeout must fit the C library's; a day is more than any request needs.
MAX_TIMEOUT = 86400.0


class Client:
    """A model ``model_name`` (``version``: a number, or None for the latest) behind ``url``."""

    def __init__(self, url, model_name, version=None, timeout=60.0):
        check_name("model_name", model_name)
        version = check_int("version", version, maximum=MAX_INT64, optional=True)
        timeout = check_number("timeout", timeout, above=0, below=MAX_TIMEOUT)
        parsed = urllib.parse.urlsplit(url if isinstance(url, str) else "")
        if parsed.scheme not in ("http", "https", "grpc") or not parsed.hostname:
            raise InputError("url", _URL_EXPECTED, repr(url))
        try:
            parsed.port
        except ValueError:
            raise InputError("url", _URL_EXPECTED, repr(url)) from None
        self.url, self.model_name, self.version, self.timeout = url, model_name, version, timeout
        self.protocol = "grpc" if parsed.scheme == "grpc" else "rest"
        self._transport = (GrpcTransport(parsed.netloc, timeout) if self.protocol == "grpc"
                           else RestTransport(f"{parsed.scheme}://{parsed.netloc}", timeout))
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
            raise InputError("url", "a server of a tfvae model (its decode gives x_mean)",
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

    def score(self, x, seeds=0, labels=None, **kwargs):
        """Each example's anomaly ``score`` [B] (minus the ELBO averaged over the draws fixed at
        export) and, when the export has a threshold, ``anomaly`` [B] (1 above it, else 0).
        ``seeds``: one int64 per example, or one for all (the same seed gives the same score)."""
        x = _floats(x, "x")
        inputs = {"x": x, "seed": _seeds(seeds, rows=len(x) if x.ndim else None)}
        return self.predict(_with_labels(inputs, labels), "score", **kwargs)

    def impute(self, x, seeds=0, **kwargs):
        """``x_imputed``: ``x`` [B, *E] with each NaN filled by its conditional mean given the
        row's observed values (an export of a model trained with missing values)."""
        x = _floats(x, "x")
        inputs = {"x": x, "seed": _seeds(seeds, rows=len(x) if x.ndim else None)}
        return self.predict(inputs, "impute", **kwargs)["x_imputed"]

    def score_rows(self, columns, seeds=0, labels=None, **kwargs):
        """The ``score`` of the rows of a table model's export, given by column: ``columns``
        maps each served column's input name to its values [B] (numbers, or a categorical
        column's labels as text)."""
        if not isinstance(columns, dict) or not columns:
            raise InputError("columns", "a dict of column input name -> values [B]",
                             repr(type(columns)))
        # Each as the served input's dtype: gRPC takes no other (float64 for float32, say).
        served = self.signatures().get("score_rows", {}).get("inputs", {})
        inputs = {name: np.asarray(values, _numpy_dtype(served[name]["dtype"])
                                   if name in served else None)
                  for name, values in columns.items()}
        rows = len(next(iter(inputs.values())))
        inputs["seed"] = _seeds(seeds, rows=rows)
        return self.predict(_with_labels(inputs, labels), "score_rows", **kwargs)

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
            raise InputError("url", f"a server whose metadata lists the signature "
                             f"{signature!r}", f"{self.url!r}, listing {sorted(signatures)}")
        if not isinstance(outputs, dict) and len(infos) == 1:
            outputs = {next(iter(infos)): outputs}
        rows = {len(value) if value.ndim else None for value in inputs.values()}
        if (not isinstance(outputs, dict) or not set(outputs) <= set(infos)
                or any(value.ndim == 0 or {len(value)} != rows for value in outputs.values())):
            got = (f"outputs {sorted(outputs)} of shapes {[v.shape for v in outputs.values()]}"
                   if isinstance(outputs, dict) else "outputs without names")
            raise InputError("url", f"a reply of {signature}'s outputs {sorted(infos)}, one "
                             "row per input", f"{self.url!r}, which answered {got}")
        try:
            return {name: value.astype(_numpy_dtype(infos[name]["dtype"]), copy=False)
                    for name, value in outputs.items()}
        except (ValueError, TypeError) as exc:
            raise InputError("url", f"a reply of {signature}'s outputs with their dtypes",
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


# ------------------------------------------------------------------------------- helpers


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


def _seeds(seeds, rows=None):
    """int64 seeds [B]; with ``rows``, a single seed stands for ``rows`` copies of itself."""
    array = np.asarray(seeds)
    if array.ndim == 0:
        array = array[np.newaxis]
    if (array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer)
            or array.min() < _INT64.min or array.max() > _INT64.max):
        raise InputError("seeds", "a non-empty list of int64 integers", repr(seeds))
    if rows is not None and np.ndim(seeds) == 0:
        array = np.repeat(array, rows)
    return array.astype(np.int64)


def _numpy_dtype(name):
    """"DT_FLOAT" -> numpy.float32."""
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2

    return tf.dtypes.as_dtype(types_pb2.DataType.Value(name)).as_numpy_dtype


def _with_labels(inputs, labels):
    """``inputs`` with a conditional model's ``label`` input (int64, one per row) when given."""
    if labels is None:
        return inputs
    rows = len(next(iter(inputs.values())))
    return {**inputs, "label": check_labels("labels", labels, count=rows).astype(np.int64)}
