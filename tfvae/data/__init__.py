"""Data for tfvae: the dataset registry and its sources (``sources``), the files users give
(``files``), the checks every array goes through (``validation``) and ``tf.data`` pipelines with
the one host-side binarization (``pipelines``)."""

from tfvae.data.pipelines import binarize, make_pipeline, make_train_stream, steps_per_epoch
from tfvae.data.sources import Dataset, load_dataset
from tfvae.data.validation import model_images, validate_images
from tfvae.options import BINARIZE_MODES, DATASETS

__all__ = ["BINARIZE_MODES", "DATASETS", "Dataset", "binarize", "load_dataset", "make_pipeline",
           "make_train_stream", "model_images", "steps_per_epoch", "validate_images"]
