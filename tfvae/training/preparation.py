"""What ``train()`` makes of a run's settings before the model is built: the dataset (which
config.json then records), and the model's constructor arguments for it, with a conditional
model's labels."""

import dataclasses
import sys

from tfvae import data as datasets
from tfvae import options
from tfvae.checks import MAX_INT64, check_choice, check_int, check_labels
from tfvae.data.validation import check_support
from tfvae.errors import InputError, arg, render
from tfvae.layers.registries import LIKELIHOODS, likelihood_support
from tfvae.layers.standardize import fit_feature_statistics
from tfvae.models import model_class
from tfvae.models.settings import model_settings
from tfvae.runs import DATA_CHECKSUM, TABLE_COLUMNS
from tfvae.training.settings import check_model_size_settings, check_same_data


# Standardization's statistics of a streamed training split: those of its first examples.
_STREAM_STATISTICS_EXAMPLES = 100_000


def load_run_data(config, writer):
    """The run's dataset; config.json's data section then records its binarization, checksum
    and the example counts it has."""
    dataset = datasets.load_dataset(**{**config["data"], "seed": config["train"]["seed"]})
    config["data"]["binarize"] = dataset.binarize
    config[DATA_CHECKSUM] = check_same_data(config.get(DATA_CHECKSUM), dataset)
    if dataset.columns is not None:  # what a new table must have to be scored by the model
        config[TABLE_COLUMNS] = [dataclasses.asdict(column) for column in dataset.columns]
    for key, split in (("train_examples", dataset.x_train), ("test_examples", dataset.x_test)):
        if (config["data"].get(key) or 0) > len(split):
            if writer:  # even with verbose=0: the run is not what was asked for
                print(render(f"tfvae: {arg(key, config['data'][key])} is more than the "
                             f"{len(split)} the dataset has; using {len(split)}"),
                      file=sys.stderr)
            config["data"][key] = len(split)
    return dataset


def model_arguments(config, dataset, steps):
    """The model's constructor arguments for ``dataset`` (its image shape, likelihood,
    binarization and labels), and the train and test labels of a conditional model."""
    cls = model_class(config["model_type"])
    model_kwargs = {"image_shape": list(dataset.image_shape), "likelihood": dataset.likelihood,
                    **config["model"]}
    check_model_size_settings(config, dataset.image_shape)
    if config["data"].get("allow_missing"):
        model_kwargs["allow_missing"] = True
    if model_kwargs["likelihood"] in LIKELIHOODS:  # an unknown name is the model's to refuse
        # The data's values must be ones the chosen p(x|z) gives a density to.
        for x in (dataset.x_train, dataset.x_test):
            if not datasets.is_stream(x):  # a stream's batches are checked as they are read
                check_support(x, "name", likelihood_support(model_kwargs["likelihood"]))
    standardize = check_choice("standardize", config["train"].get("standardize") or "off",
                               options.SETTINGS["standardize"].choices)
    if "feature_mean" not in model_kwargs and (
            standardize == "on" or (standardize == "auto" and len(dataset.image_shape) == 1)):
        model_kwargs["feature_mean"], model_kwargs["feature_scale"] = fit_feature_statistics(
            dataset.x_train.head(_STREAM_STATISTICS_EXAMPLES) if dataset.streamed
            else dataset.x_train)
    if model_kwargs["likelihood"] == "table" and "columns" not in model_kwargs:
        # The table head models each column by the type the reader found.
        model_kwargs["columns"] = [dataclasses.asdict(column) for column in dataset.columns or ()]
    if "dynamic_binarization" in model_settings(cls):
        # Grey levels go to the model, which binarizes each batch on the device.
        model_kwargs["dynamic_binarization"] = dataset.binarize == "dynamic"
    warmup_epochs = config["train"].get("kl_warmup_epochs")
    if warmup_epochs:
        model_kwargs["kl_warmup_steps"] = check_int("kl_warmup_epochs", warmup_epochs,
                                                    maximum=MAX_INT64 // steps) * steps
    # A conditional model trains and is tested on (image, label) pairs.
    train_labels = test_labels = None
    if config["train"].get("conditional") or model_kwargs.get("num_classes"):
        model_kwargs["num_classes"], train_labels, test_labels = class_labels(
            dataset, model_kwargs.get("num_classes"))
    return model_kwargs, train_labels, test_labels


def class_labels(dataset, num_classes=None):
    """``(num_classes, train labels, test labels)`` of a dataset for a conditional model, the
    labels checked against ``num_classes`` (by default one more than the largest label)."""
    if dataset.y_train is None or dataset.y_test is None:
        raise InputError("conditional", "a dataset with class labels (mnist, tfds:NAME with "
                         "labels, an .npz with y_train and y_test)",
                         f"{dataset.name}, which has none")
    labels_of = f"{arg('name')} labels"
    if num_classes is None:
        largest = max(check_labels(labels_of, y).max(initial=0)
                      for y in (dataset.y_train, dataset.y_test))
        num_classes = max(int(largest) + 1, 2)
    return (num_classes, check_labels(labels_of, dataset.y_train, num_classes),
            check_labels(labels_of, dataset.y_test, num_classes))
