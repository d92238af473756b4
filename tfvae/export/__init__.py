"""Exporting a model for serving: one dispatcher over the registered formats (``formats``:
``export_model(model, path, format=...)``), the signatures (``signatures``), the SavedModel
(``savedmodel``), TF Serving's warmup records (``warmup``), the LiteRT and ONNX files
(``runtimes``), and a client of TF Serving's REST and gRPC APIs (``client``)."""

from tfvae.lazy import lazy_names

_NAMES = {
    **{name: "tfvae.export.formats" for name in (
        "export_model", "export_format", "ExportFormat", "FORMATS")},
    **{name: "tfvae.export.signatures" for name in (
        "SIGNATURES", "DEFAULT_SIGNATURE", "input_specs", "model_signatures",
        "serving_functions", "signature_outputs")},
    **{name: "tfvae.export.versions" for name in ("export_run", "next_version")},
    **{name: "tfvae.export.metadata" for name in ("read_metadata", "METADATA_FILE",
                                                  "ScoreSettings")},
}
__all__ = list(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES, (
    "formats", "signatures", "savedmodel", "versions", "metadata", "warmup", "runtimes", "client",
    "transports", "rows"))
