"""The settings a model takes: what ``train`` and the command line check a run's settings
against before building anything.

A model's settings are the keyword arguments of its constructor and of every class it extends,
less the ones it holds at one value (``fixed_settings``: the wake-sleep's prior, the
autoencoder's objective), which it names with the reason instead of taking them.
"""

import inspect

import keras

from tfvae.errors import InputError, arg


def model_settings(cls):
    """The names of the settings the model class ``cls`` takes."""
    names = set()
    for klass in cls.__mro__:
        if klass is keras.Model:
            break
        init = klass.__dict__.get("__init__")
        if init is not None:
            names |= {p.name for p in inspect.signature(init).parameters.values()
                      if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return frozenset(names - set(cls.fixed_settings))


def check_fixed_settings(cls, given):
    """Refuse a setting in ``given`` that ``cls`` holds at another value, saying why."""
    for name, (value, why) in cls.fixed_settings.items():
        if name in given and given[name] != value:
            raise InputError(name, f"{value!r} {why}", repr(given[name]))


def check_model_settings(cls, name, given):
    """Refuse any setting in ``given`` that the model ``name`` (class ``cls``) does not take,
    naming the setting and the ones it takes."""
    check_fixed_settings(cls, given)
    taken = model_settings(cls)
    for setting in given:
        if setting not in taken:
            raise InputError(setting, f"a setting that {arg('model', name)} takes (one of "
                             f"{', '.join(sorted(taken - _BUILT))})", repr(given[setting]))


# Settings train() fills in from the data and the run.
_BUILT = {"image_shape", "seed", "num_train"}
