"""Data for tfvae: the data sources and ``load_dataset`` (``sources``, with the ``SOURCES``
registry users add a dataset to), the files users give (``files``), the checks every array goes
through (``validation``), ``tf.data`` pipelines with the one host-side binarization
(``pipelines``), splits streamed from disk (``streams``) and the prepared format (``prepared``).

Names load their module on first use, so the command line can list ``SOURCES.names()`` without
loading TensorFlow.
"""

from tfvae.lazy import lazy_names

# public name -> the module that defines it
_NAMES = {
    "BINARIZE_MODES": "tfvae.options",
    "DATASETS": "tfvae.options",
    "SCHEMES": "tfvae.data.sources",
    "SOURCES": "tfvae.data.sources",
    "Dataset": "tfvae.data.sources",
    "Splits": "tfvae.data.sources",
    "load_dataset": "tfvae.data.sources",
    "binarize": "tfvae.data.pipelines",
    "make_pipeline": "tfvae.data.pipelines",
    "make_train_stream": "tfvae.data.pipelines",
    "steps_per_epoch": "tfvae.data.pipelines",
    "model_images": "tfvae.data.validation",
    **{name: "tfvae.data.streams" for name in ("Stream", "announcing", "head", "is_stream",
                                                    "mean_example")},
    **{name: "tfvae.data.prepared" for name in ("prepare", "read_prepared")},
    **{name: "tfvae.data.validation" for name in ("validate_images", "validate_vectors",
                                                  "validate_examples")},
    **{name: "tfvae.data.tables" for name in ("read_table", "Table", "Column")},
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES, ("files", "graph_checks", "image_folders",
                                                     "packaged", "pipelines", "prepared",
                                                     "sources", "streams", "tables",
                                                     "validation"))
