"""``tfvae train``: train a model into a run directory.

Its flags are generated from the settings ``train`` declares (``tfvae.options.SETTINGS``), named
by the one mapping of Python arguments to flags (``tfvae.cli.flags``). None has an argparse
default: what was not given is absent from the parsed arguments, and ``train`` applies the
declared default, so a resume can tell a given setting from one left out.
"""

import argparse
import sys
import time

from tfvae import options
from tfvae.cli.flags import flag_of, speaking_as
from tfvae.data.sources import known_names
from tfvae.errors import counted, render
from tfvae.layers.registries import BODIES, LIKELIHOODS
from tfvae.models.registry import MODELS

# Choice lists read from the registries when the parser is built, so members registered by the
# user's code are offered too.
_CHOICES = {"architecture": BODIES.names, "likelihood": LIKELIHOODS.names}


def register(subparsers):
    p = subparsers.add_parser("train", help="train a model into a run directory",
                              description="Train a model; RUN_DIR gets config.json, metrics.csv, "
                                          "TensorBoard logs, checkpoints and model.keras.")
    flag = flag_of("train")
    p.add_argument(flag("run_dir"), dest="run_dir", required=True, metavar="RUN_DIR",
                   help="the run directory")
    groups = {}
    for setting in options.SETTINGS.values():
        where = p if setting.group is None else groups.setdefault(
            setting.group, p.add_argument_group(setting.group))
        if setting.name == "storage":  # two flags, one setting
            storage = where.add_mutually_exclusive_group()
            storage.add_argument("--in-memory", dest="storage", action="store_const",
                                 const="memory", default=argparse.SUPPRESS,
                                 help="hold the examples in memory, however large")
            storage.add_argument(flag("storage"), dest="storage", action="store_const",
                                 const="stream", default=argparse.SUPPRESS,
                                 help="stream the examples from disk (an image folder, an .npy "
                                 "file, a prepared dataset: tfvae prepare), however small; by "
                                 "default those above 1 GB as float32 are streamed")
            continue
        where.add_argument(flag(setting.name), dest=setting.name, default=argparse.SUPPRESS,
                           **setting_argument(setting))
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue a killed run from its last checkpoint")
    group.add_argument("--overwrite", action="store_true",
                       help="replace the tfvae run in RUN_DIR (only its own files)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def setting_argument(setting):
    """argparse's keywords for ``setting``: its type, choices and help with its default."""
    with speaking_as("train"):
        help_text = render(setting.help or "")
    if setting.default is not None and setting.type is not bool and "default" not in help_text:
        help_text += f"{' ' if help_text else ''}(default: {setting.default})"
    if setting.name == "name":
        help_text = (f"a registered dataset ({', '.join(known_names())}), or a path to "
                     f".npz/.npy/IDX/an image folder (default: {setting.default})")
    if setting.name == "model":
        help_text = f"the model type: {', '.join(MODELS.names())} (default: {setting.default})"
    if setting.type is bool:
        return {"action": "store_true", "help": help_text}
    choices = _CHOICES[setting.name]() if setting.name in _CHOICES else setting.choices
    return {"type": setting.type, "choices": choices, "help": help_text or None,
            "metavar": setting.metavar, "nargs": setting.nargs}


def run(args):
    from tfvae.training.pipeline import train

    # Only the settings given: train() applies the declared defaults to a new run, and checks a
    # resumed run's given settings against its own.
    given = {name: value for name, value in vars(args).items() if name in options.SETTINGS}
    start = time.perf_counter()
    result = train(args.run_dir, resume=args.resume, overwrite=args.overwrite,
                   verbose=0 if args.quiet else (1 if sys.stdout.isatty() else 2),
                   **options.train_arguments(given))
    data, last = result.config["data"], result.metrics
    test = (f"test elbo {last['test_elbo']:.2f}" if last["test_elbo"] is not None
            else f"test reconstruction {last['test_reconstruction']:.2f}")
    print(f"tfvae train: {test} after {counted(int(last['epoch']), 'epoch')}, "
          f"{time.perf_counter() - start:.0f} s; run written to {args.run_dir} (dataset "
          f"{data['name']}, binarization {data['binarize']})")
    return 0
