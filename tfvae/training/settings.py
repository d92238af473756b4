"""A run's settings as ``train()`` takes them: the dataset's path made absolute, the model's size
checked before any data is read, and on ``--resume`` what may not change (every setting but
``--epochs``) and the data it must find again (by checksum, wherever it is now)."""

import math
from pathlib import Path

from tfvae import options
from tfvae.checks import check_count, check_image_size, check_int, is_integer
from tfvae.errors import InputError
from tfvae.layers.bodies import check_model_size
from tfvae.runs import DATA_CHECKSUM


# -- a run's settings, as train() takes them --------------------------------------------------

def normalized_data_config(data_config):
    """``data_config`` with the dataset's path and ``data_path`` made absolute, so that the run
    works from any working directory, and ``image_size`` checked."""
    from tfvae.data.sources import looks_like_path

    data_config = dict(data_config)
    if data_config.get("image_size") is not None:  # as config.json holds it: a list
        data_config["image_size"] = check_image_size("--image-size", data_config["image_size"])
    name = data_config.get("name")
    if isinstance(name, (str, Path)) and looks_like_path(str(name)) and Path(name).exists():
        data_config["name"] = str(Path(name).resolve())
    if data_config.get("data_path") is not None:
        data_config["data_path"] = str(Path(data_config["data_path"]).resolve())
    return data_config


def check_resume_settings(config, model, model_config, data_config, train_settings,
                           mixed_precision):
    """Refuse, naming the flag, any setting given to --resume that differs from the run's."""
    recorded = config["train"].get("mixed_precision")
    if mixed_precision is not None and mixed_precision != recorded:
        raise InputError("--mixed-precision", f"{recorded} as the run was started with "
                         "(the model's dtypes are part of the run)", repr(mixed_precision))
    given = [("--model", config["model_type"], model)]
    given += [(f"--{key.replace('_', '-')}", config["model"].get(key), value)
              for key, value in model_config.items()]
    moved = _moved_dataset(config, data_config.get("name"))
    given += [("--dataset" if key == "name" else f"--{key.replace('_', '-')}",
               config["data"].get(key), value) for key, value in data_config.items()
              if not (key == "name" and moved)]
    given += [(f"--{key.replace('_', '-')}", config["train"].get(key), value)
              for key, value in train_settings.items()]
    for flag, stored, value in given:
        if value is not None and value != stored:
            raise InputError(flag, f"{stored!r} as the run was started with (--resume may only "
                             "change --epochs)", repr(value))


def _moved_dataset(config, name):
    """Whether ``name`` may stand for the run's dataset file at another place: both are paths and
    the run recorded its data's checksum, which :func:`check_same_data` compares after loading."""
    from tfvae.data.sources import looks_like_path

    stored = config["data"].get("name")
    return (DATA_CHECKSUM in config and isinstance(name, str) and isinstance(stored, str)
            and looks_like_path(name) and looks_like_path(stored))


def check_same_data(recorded, dataset):
    """The checksum record of ``dataset`` (``config.json``'s ``data_checksum``), after checking it
    against the ``recorded`` one of a resumed run: the same data wherever it is now, or refused
    naming what differs."""
    record = {"sha256": dataset.checksum(), "examples": [len(dataset.x_train), len(dataset.x_test)],
              "image_shape": list(dataset.image_shape)}
    if recorded is None or recorded["sha256"] == record["sha256"]:
        return record
    differs = [f"{key} {record[key]} (the run's: {recorded[key]})"
               for key in ("examples", "image_shape") if record[key] != recorded.get(key)]
    raise InputError("--dataset", "the data the run was trained on (the same content, wherever "
                     "it is now)", f"{dataset.name}, whose "
                     + ("; ".join(differs) if differs else "values differ (sha256 "
                        f"{record['sha256'][:12]}..., the run's {recorded['sha256'][:12]}...)"))


def check_resume_epochs(epochs, completed, state):
    """Refuse ``--epochs`` below what a resumed run completed; whether a finished run has
    nothing left to train (True: leave it as it is)."""
    if epochs < completed:
        raise InputError("--epochs", f"at least the {completed} epochs the run has completed "
                         "(--epochs is the total)", epochs)
    return epochs == completed and state.get("status") == "finished"


# The flags of the settings that size a model, for the check before any data is read.
_SIZE_FLAGS = {"image_shape": "--image-size", "latent_dim": "--latent-dim", "hidden": "--hidden",
               "depth": "--depth"}


def check_model_size_settings(config, image_shape):
    """Refuse a model too large for memory, naming the flag, before the data is read (with
    ``image_shape`` None: not known yet) and again once its image shape is known."""
    net = {**options.NETWORK_DEFAULTS, **config["model"]}
    if not all(is_integer(net[key]) and net[key] >= 1 for key in ("latent_dim", "hidden", "depth")):
        return  # the model's own checks name what is wrong
    names = {**_SIZE_FLAGS, "image_shape": "--image-size" if config["data"].get("image_size")
             else "--dataset"}
    check_model_size(net["architecture"], image_shape, net["latent_dim"], net["hidden"],
                     net["depth"], names)
    # A training step decodes batch x samples images: the larger of the two is refused.
    sizes = {"--batch-size": config["train"]["batch_size"],
             "--num-samples": check_int("--num-samples", net.get("num_samples", 1))}
    larger, other = sorted(sizes, key=sizes.get, reverse=True)
    check_count(larger, sizes[larger], math.prod(image_shape or (1,)) * sizes[other],
                what=f"decoded images in a step of {other} {sizes[other]}")
