"""The search space of :func:`tfvae.training.search.tune`: its file, checked against
``train``'s settings before any trial runs.

The space file is JSON; every name is a setting of ``train`` (``tfvae.options.SETTINGS``)::

    {"params": {"kl_warmup_epochs": {"low": 0, "high": 20},
                "learning_rate": {"low": 1e-4, "high": 1e-2, "log": true},
                "prior": {"choices": ["normal", "vamp"]}},
     "fixed": {"name": "mnist", "epochs": 10, "latent_dim": 50},
     "objective": {"metric": "test_elbo", "take": "best", "direction": "maximize"},
     "pruning": {"startup_trials": 3, "warmup_epochs": 1},
     "seed": 0}

A range (``low``, ``high``, with ``log`` and ``step``) is for a number setting; ``choices``
for any. ``objective`` defaults as shown: the run's best epoch by the test ELBO. ``pruning``
(or false: none) is Optuna's median rule: from the ``startup_trials``-th finished trial on, a
trial whose epoch metric is worse than the median of the others' at the same epoch stops there,
after its first ``warmup_epochs`` epochs. ``seed`` seeds the sampler (TPE).
"""

import dataclasses
import json
import math

from tfvae import options
from tfvae.checks import is_integer
from tfvae.errors import InputError, arg
from tfvae.layers.registries import BODIES, LIKELIHOODS

METRICS = {"test_elbo": "val_elbo", "test_reconstruction": "val_reconstruction",
           "train_elbo": "elbo", "train_reconstruction": "reconstruction"}
OBJECTIVE_DEFAULTS = {"metric": "test_elbo", "take": "best", "direction": "maximize"}
OBJECTIVE_CHOICES = {"metric": tuple(METRICS), "take": ("best", "last"),
                     "direction": ("maximize", "minimize")}
PRUNING_DEFAULTS = {"startup_trials": 3, "warmup_epochs": 1}
_SPACE_KEYS = ("params", "fixed", "objective", "pruning", "seed")
_RANGE_KEYS = ("low", "high", "log", "step")
# Choices read from the registries, so members registered by the user's code are allowed too.
_REGISTERED = {"architecture": BODIES.names, "likelihood": LIKELIHOODS.names}


def read_space(path):
    """The space file at ``path``, checked (:func:`check_space`)."""
    from tfvae.readers import read_json

    return check_space(read_json(path, "space", "a search space file (JSON; see "
                                              "docs/tuning.md)"), str(path))


def check_space(space, source="(a dict)"):
    """``space`` checked, with its defaults filled in; an ``InputError`` names ``source`` (the
    file), the key and what was expected."""
    def refuse(key, expected, got):
        raise InputError(f"{arg('space')} {source}, {key}", expected, repr(got))

    if not isinstance(space, dict):
        refuse("the whole", "a JSON object", space)
    for key in space:
        if key not in _SPACE_KEYS:
            refuse(key, f"one of the keys {', '.join(_SPACE_KEYS)}", key)
    params, fixed = space.get("params"), space.get("fixed", {})
    if not isinstance(params, dict) or not params:
        refuse("params", "an object of at least one setting to search", params)
    if not isinstance(fixed, dict):
        refuse("fixed", "an object of settings every trial takes", fixed)
    checked = {"params": {}, "fixed": {}}
    for name, value in fixed.items():
        setting = _setting(refuse, f"fixed.{name}", name)
        checked["fixed"][name] = _check_value(refuse, f"fixed.{name}", setting, value)
    for name, spec in params.items():
        key = f"params.{name}"
        setting = _setting(refuse, key, name)
        if name in fixed:
            refuse(key, "a setting that is not also fixed", name)
        checked["params"][name] = _check_param(refuse, key, setting, spec)
    checked["objective"] = _check_options(refuse, "objective", space.get("objective", {}),
                                          OBJECTIVE_DEFAULTS, OBJECTIVE_CHOICES)
    pruning = space.get("pruning", True)
    if pruning is False or pruning is None:
        checked["pruning"] = None
    else:
        pruning = {} if pruning is True else pruning
        checked["pruning"] = _check_options(refuse, "pruning", pruning, PRUNING_DEFAULTS)
    seed = space.get("seed", 0)
    if not is_integer(seed) or not 0 <= seed < 2 ** 32:
        refuse("seed", "an integer from 0 to 2**32 - 1", seed)
    checked["seed"] = int(seed)
    # As stored in space.json, so a resume compares like with like.
    return json.loads(json.dumps(checked))


def _setting(refuse, key, name):
    if name not in options.SETTINGS:
        refuse(key, "a setting of train (tfvae.options.SETTINGS)", name)
    return options.SETTINGS[name]


def _check_value(refuse, key, setting, value):
    """``value`` of ``setting`` as the space gives it, or refused."""
    if setting.nargs is not None:
        count = setting.nargs if isinstance(setting.nargs, int) else None
        if not isinstance(value, list) or not value or (count and len(value) != count):
            refuse(key, f"a list of {count or 'one or more'} values", value)
        return [_check_value(refuse, key, dataclasses.replace(setting, nargs=None), v)
                for v in value]
    kinds = {bool: isinstance(value, bool), int: is_integer(value) and not isinstance(value, bool),
             float: isinstance(value, (int, float)) and not isinstance(value, bool)
             and math.isfinite(value), str: isinstance(value, str)}
    if not kinds[setting.type] and not (value is None and setting.default is None):
        refuse(key, f"a value of type {setting.type.__name__}", value)
    choices = (_REGISTERED[setting.name]() if setting.name in _REGISTERED else setting.choices)
    if choices and value not in choices:
        refuse(key, f"one of {', '.join(map(str, choices))}", value)
    return value


def _check_param(refuse, key, setting, spec):
    if not isinstance(spec, dict):
        refuse(key, 'an object: {"low": L, "high": H} (with "log" or "step") or {"choices": '
                    '[...]}', spec)
    if "choices" in spec:
        if set(spec) != {"choices"}:
            refuse(key, "choices alone", sorted(spec))
        if setting.nargs is not None:
            refuse(key, "a setting of one value (a list cannot be searched)", setting.name)
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            refuse(f"{key}.choices", "a list of one or more values", spec["choices"])
        return {"choices": [_check_value(refuse, f"{key}.choices", setting, v)
                            for v in spec["choices"]]}
    for name in spec:
        if name not in _RANGE_KEYS:
            refuse(key, "the keys low, high, log, step, or choices alone", name)
    if setting.type not in (int, float) or setting.nargs is not None:
        refuse(key, f"choices (a range is for number settings; {setting.name} is a "
                    f"{setting.type.__name__})", spec)
    if "low" not in spec or "high" not in spec:
        refuse(key, "both low and high", sorted(spec))
    low, high = (_check_value(refuse, f"{key}.{end}", setting, spec[end])
                 for end in ("low", "high"))
    if low is None or high is None or not low <= high:
        refuse(f"{key}.high", f"at least low ({low})", high)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        refuse(f"{key}.log", "true or false", log)
    if log and low <= 0:
        refuse(f"{key}.low", "above 0 for a log scale", low)
    checked = {"low": low, "high": high, "log": log}
    if "step" in spec:
        step = _check_value(refuse, f"{key}.step", setting, spec["step"])
        if log or step is None or step <= 0:
            refuse(f"{key}.step", "a positive step, without log", spec["step"])
        checked["step"] = step
    return checked


def _check_options(refuse, section, given, defaults, choices=None):
    if not isinstance(given, dict):
        refuse(section, f"an object with the keys {', '.join(defaults)}", given)
    checked = dict(defaults)
    for name, value in given.items():
        key = f"{section}.{name}"
        if name not in defaults:
            refuse(key, f"one of the keys {', '.join(defaults)}", name)
        if choices is not None and value not in choices[name]:
            refuse(key, f"one of {', '.join(choices[name])}", value)
        if choices is None and (not is_integer(value) or isinstance(value, bool) or value < 0):
            refuse(key, "an integer, 0 or more", value)
        checked[name] = value
    return checked
