"""Data sources: named datasets, ``scheme:NAME`` datasets and user files, as train and test splits.

``load_dataset(name)`` returns a :class:`Dataset` whose images are float32 ``[N, H, W, C]`` in
``[0, 1]`` (``C = 1`` for grey images). ``name`` is one of:

=====================  ===============================================  ==========  ===========
name                   source                                           likelihood  binarize
=====================  ===============================================  ==========  ===========
``"mnist"``            embedded ``tfvae/data/packaged/mnist.npz``       bernoulli   ``dynamic``
                       (60,000 train / 10,000 test, labels),
                       sha256-checked
``"binarized_mnist"``  Larochelle & Murray's static binarization:       bernoulli   ``static``
                       ``data_path``, else ``$TFVAE_BINARIZED_MNIST``,              (fixed)
                       else ``tensorflow_datasets``; 50,000 train (the
                       ``valid`` split is not used) / 10,000 test
``"frey_face"``        embedded                                         gaussian    ``none``
                       ``tfvae/data/packaged/frey_rawface.mat`` (1,965              (fixed)
                       faces 28x20), sha256-checked, a fixed 1,772 /
                       193 split
``"tfds:<name>"``      ``tensorflow_datasets`` (optional dependency),   bernoulli   ``none``
                       its ``train`` and ``test`` splits
a path                 ``.npz``, ``.npy``, an IDX file (optionally      bernoulli   ``none``
                       ``.gz``) or a folder of PNG/JPEG/BMP images
                       (:func:`tfvae.data.image_folders.read_image_folder`)
=====================  ===============================================  ==========  ===========

A source is a function that returns a :class:`Splits` (its images in any form
:func:`tfvae.data.validate_images` accepts, its labels or None, the likelihood that suits them and
its binarization). It takes the keyword arguments it uses, and no others: ``data_path`` (where
its data is; ``--data-path`` is refused for a source that takes none) and ``image_size`` (``[H,
W]`` to read at; other sources' images are resized afterwards). A name is added with one
decorator::

    @tfvae.data.SOURCES.register("toy")
    def toy():
        return tfvae.data.Splits(x_train=..., x_test=...)

``SCHEMES`` holds the sources of a family of names, ``scheme:NAME``, such as ``tfds:mnist``: a
second registry rather than a prefix check in each source, so a name is found by one look-up, the
help lists each scheme once, and users add a scheme with the same one decorator (its function
takes ``NAME`` first). Any other name is read as a path (:mod:`tfvae.data.sources.paths`).

Binarization (``binarize=``):

- ``"dynamic"``: ``x_train`` keeps its grey levels and the training pipeline draws a fresh
  Bernoulli sample per pixel each epoch (``make_pipeline(..., dynamic_binarize=True)``);
  ``x_test`` is binarized once, so the test bound is computed on one fixed binary set.
- ``"static"``: both splits are binarized once.
- ``"none"``: grey levels are kept.

The one-off binarizations draw from ``numpy.random.default_rng`` streams spawned from ``seed``
(one per split), so a given seed gives the same binary test set under "dynamic" and "static".

User files: integer data is read as grey levels 0..255 and scaled by 1/255, except integer data
holding only 0 and 1, which is taken as already binary; float data is kept as it is and must lie
in [0, 1]. Arrays may be ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, D]`` with ``D`` a perfect
square. Where a file gives no train/test split, the last 10% (at least one example) is the test
split. Every bad input raises :class:`tfvae.errors.InputError`.

This module imports no TensorFlow (nor numpy): the command line lists ``SOURCES.names()`` in its
help at once.
"""

from tfvae.lazy import lazy_names
from tfvae.registry import Registry

SOURCES = Registry("dataset", {
    "mnist": "tfvae.data.sources.embedded:mnist",
    "binarized_mnist": "tfvae.data.sources.binarized_mnist:binarized_mnist",
    "frey_face": "tfvae.data.sources.embedded:frey_face",
})
SCHEMES = Registry("dataset scheme", {"tfds": "tfvae.data.sources.tfds:tfds_dataset"})


def known_names():
    """Every registered name, then each scheme as ``scheme:NAME``: what ``--dataset`` takes
    besides a path, as the help and the errors list it."""
    return [*SOURCES.names(), *(f"{scheme}:NAME" for scheme in SCHEMES.names())]


# public name -> the module that defines it
_NAMES = {
    "Dataset": "tfvae.data.sources.dataset",
    "load_dataset": "tfvae.data.sources.dataset",
    "looks_like_path": "tfvae.data.sources.dataset",
    "Splits": "tfvae.data.sources.splits",
    "DATA_DIR": "tfvae.data.sources.embedded",
    "_EMBEDDED": "tfvae.data.sources.embedded",  # the packaged files' checksums, for tests
}
__all__ = ["SCHEMES", "SOURCES", "known_names", *(n for n in _NAMES if not n.startswith("_"))]
__getattr__, __dir__ = lazy_names(__name__, _NAMES, ("binarized_mnist", "dataset", "embedded",
                                                     "paths", "splits", "tfds"))
