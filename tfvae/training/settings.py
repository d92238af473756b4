"""A run's settings as ``train()`` resolves them into config.json, before any data is read: a
new run's from the settings given and their declared defaults (``tfvae.options.SETTINGS``), a
resumed run's from its config.json, where only ``epochs`` may change and the data must be found
again (by checksum, wherever it is now)."""

import math
from pathlib import Path

from tfvae import options
from tfvae.checks import (check_choice, check_count, check_image_size, check_int, check_number,
                          check_seed, is_integer)
from tfvae.errors import InputError, arg, counted
from tfvae.layers.bodies import check_model_size
from tfvae.runs import DATA_CHECKSUM

# The settings of config.json's "train" section, in the order it records them.
TRAIN_KEYS = ("epochs", "batch_size", "optimizer", "learning_rate", "learning_rate_schedule",
              "learning_rate_warmup_epochs", "clip_norm", "skip_norm", "ema",
              "early_stopping_patience", "seed", "kl_warmup_epochs", "conditional", "standardize")
# The settings a Keras optimizer object given as ``optimizer`` holds itself: config.json records
# them as None (the object's config has them).
OPTIMIZER_OWN_KEYS = ("learning_rate", "learning_rate_schedule", "learning_rate_warmup_epochs",
                      "clip_norm", "ema")


def new_run_config(model, model_config, data_config, train_settings, mixed_precision,
                   projector):
    """config.json of a new run of ``model`` (a registered name): the settings given, the
    others at their defaults."""
    from tfvae.models import model_class
    from tfvae.models.settings import check_model_settings

    cls = model_class(model)
    if cls.needs_example_index:
        raise InputError("model", "a model that trains on batches of images (MCEM keeps a chain "
                         "per example: `tfvae reproduce fig3` trains it)", repr(model))
    check_model_settings(cls, model, model_config)
    own = ()
    if isinstance(train_settings.get("optimizer"), dict):  # the record of an optimizer object
        given = [key for key in OPTIMIZER_OWN_KEYS if train_settings.get(key) is not None]
        if given:
            raise InputError(given[0], "none with an optimizer object (set it on the object)",
                             repr(train_settings[given[0]]))
        own = OPTIMIZER_OWN_KEYS
    return checked_train_settings({
        "model_type": model,
        "model": dict(model_config),
        "data": {"name": options.SETTINGS["name"].default, **data_config},
        "train": {**{key: options.SETTINGS[key].default if train_settings.get(key) is None
                     and key not in own else train_settings.get(key) for key in TRAIN_KEYS},
                  "mixed_precision": mixed_precision,
                  "projector": bool(options.SETTINGS["projector"].default if projector is None
                                    else projector)},
    })


def resumed_run_config(config, model, model_config, data_config, train_settings,
                       mixed_precision, projector):
    """A resumed run's config.json: the run's own, after checking that every setting given is
    the run's (``epochs`` aside, which is the new total)."""
    given = {key: value for key, value in train_settings.items() if key != "epochs"}
    check_resume_settings(config, model, model_config, data_config, given, mixed_precision)
    if data_config.get("name") is not None:  # the run's data where it is now
        config["data"]["name"] = data_config["name"]
    if train_settings.get("epochs") is not None:
        config["train"]["epochs"] = train_settings["epochs"]
    if projector:  # an output, not a setting of the training: a resume may ask for it
        config["train"]["projector"] = True
    return checked_train_settings(config)


def checked_train_settings(config):
    """``config`` with its settings checked and its counts as plain ints (numpy's are accepted):
    config.json and Keras's seeding take them. A setting a run's config.json lacks (a run from
    before it existed) is recorded at its declared default."""
    train = config["train"]
    for key in TRAIN_KEYS:
        if key not in train:
            train[key] = options.SETTINGS[key].default
    train["epochs"] = check_int("epochs", train["epochs"])
    train["batch_size"] = check_int("batch_size", train["batch_size"])
    train["seed"] = check_seed("seed", train["seed"])
    if not isinstance(train["optimizer"], dict):  # a dict records an optimizer object
        check_choice("optimizer", train["optimizer"], options.OPTIMIZERS)
        train["learning_rate"] = check_number("learning_rate", train["learning_rate"], above=0)
        check_choice("learning_rate_schedule", train["learning_rate_schedule"],
                     options.LEARNING_RATE_SCHEDULES)
        train["learning_rate_warmup_epochs"] = check_int(
            "learning_rate_warmup_epochs", train["learning_rate_warmup_epochs"], minimum=0)
        if train["clip_norm"] is not None:
            train["clip_norm"] = check_number("clip_norm", train["clip_norm"], above=0)
        if train["ema"] is not None:
            train["ema"] = check_number("ema", train["ema"], above=0, below=1)
    if train["skip_norm"] is not None:
        train["skip_norm"] = check_number("skip_norm", train["skip_norm"], above=0)
    train["early_stopping_patience"] = check_int(
        "early_stopping_patience", train["early_stopping_patience"], optional=True)
    return config


def normalized_data_config(data_config):
    """``data_config`` with the dataset's path and ``data_path`` made absolute, so that the run
    works from any working directory, and ``image_size`` checked."""
    from tfvae.data.sources import looks_like_path

    data_config = dict(data_config)
    if data_config.get("image_size") is not None:  # as config.json holds it: a list
        data_config["image_size"] = check_image_size("image_size", data_config["image_size"])
    name = data_config.get("name")
    if isinstance(name, (str, Path)) and looks_like_path(str(name)) and Path(name).exists():
        data_config["name"] = str(Path(name).resolve())
    if data_config.get("data_path") is not None:
        data_config["data_path"] = str(Path(data_config["data_path"]).resolve())
    return data_config


def check_resume_settings(config, model, model_config, data_config, train_settings,
                          mixed_precision):
    """Refuse, naming it, any setting given to a resume that differs from the run's (a setting
    config.json lacks is at its declared default)."""
    recorded = config["train"].get("mixed_precision")
    if mixed_precision is not None and mixed_precision != recorded:
        raise InputError("mixed_precision", f"{recorded} as the run was started with "
                         "(the model's dtypes are part of the run)", repr(mixed_precision))
    moved = _moved_dataset(config, data_config.get("name"))
    given = [("model", config["model_type"], model)]
    given += [(key, _recorded(config, "model", key), value) for key, value in model_config.items()]
    given += [(key, _recorded(config, "data", key), value) for key, value in data_config.items()
              if not (key == "name" and moved)]
    given += [(key, _recorded(config, "train", key), value)
              for key, value in train_settings.items()]
    for name, stored, value in given:
        if value is not None and value != stored:
            raise InputError(name, f"{stored!r} as the run was started with (a resume may only "
                             f"change {arg('epochs')})", repr(value))


def _recorded(config, section, key):
    setting = options.SETTINGS.get(key)
    return config[section].get(key, None if setting is None else setting.default)


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
    raise InputError("name", "the data the run was trained on (the same content, wherever "
                     "it is now)", f"{dataset.name}, whose "
                     + ("; ".join(differs) if differs else "values differ (sha256 "
                        f"{record['sha256'][:12]}..., the run's {recorded['sha256'][:12]}...)"))


def check_resume_epochs(epochs, completed, state):
    """Refuse ``epochs`` below what a resumed run completed; whether a finished run has
    nothing left to train (True: leave it as it is)."""
    if epochs < completed:
        raise InputError("epochs", f"at least the {counted(completed, 'epoch')} the run has "
                         f"completed ({arg('epochs')} is the total)", epochs)
    return epochs == completed and state.get("status") == "finished"


def check_model_size_settings(config, image_shape):
    """Refuse a model too large for memory, naming the setting, before the data is read (with
    ``image_shape`` None: not known yet) and again once its image shape is known."""
    net = {**options.NETWORK_DEFAULTS, **config["model"]}
    if not all(is_integer(net[key]) and net[key] >= 1 for key in ("latent_dim", "hidden", "depth")):
        return  # the model's own checks name what is wrong
    names = {key: key for key in ("latent_dim", "hidden", "depth")}
    names["image_shape"] = "image_size" if config["data"].get("image_size") else "name"
    check_model_size(net["architecture"], image_shape, net["latent_dim"], net["hidden"],
                     net["depth"], names)
    # A training step decodes batch x samples images: the larger of the two is refused.
    sizes = {"batch_size": config["train"]["batch_size"],
             "num_samples": check_int("num_samples", net.get("num_samples", 1))}
    larger, other = sorted(sizes, key=sizes.get, reverse=True)
    check_count(larger, sizes[larger], math.prod(image_shape or (1,)) * sizes[other],
                what=f"decoded images in a step of {arg(other, sizes[other])}")
