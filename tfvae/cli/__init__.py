"""The ``tfvae`` command.

Each module of this package is one subcommand (or a few related ones) and defines
``register(subparsers)``, which adds its parser and sets ``func(args) -> exit code``. Bad input
raises ``tfvae.errors.InputError``: one line on stderr and exit status 2, no traceback.
"""

import argparse
import importlib
import pkgutil
import sys


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tfvae", description="Auto-Encoding Variational Bayes on TensorFlow and Keras 3.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{info.name}").register(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    # Imported here so `tfvae --help` and argument errors stay fast (TensorFlow is slow to load).
    from tfvae.errors import InputError
    from tfvae.training import TrainingDiverged

    try:
        return args.func(args) or 0
    except InputError as e:
        print(f"tfvae {args.command}: error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"tfvae {args.command}: training stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tfvae {args.command}: interrupted", file=sys.stderr)
        return 130
