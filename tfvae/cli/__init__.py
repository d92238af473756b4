"""The ``tfvae`` command.

Each module of this package is one subcommand (or a few related ones) and defines
``register(subparsers)``, which adds its parser and sets ``func(args) -> exit code``. Bad input
raises ``tfvae.errors.InputError``: one line on stderr and exit status 2, no traceback.
"""

import argparse
import errno
import importlib
import os
import pkgutil
import sys

# A write that fails for lack of space is not bad input: exit 1, as for a diverged run.
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _after_no_space(args):
    """What to do once space is back, true in the state the command stopped in: a run resumes
    from its last checkpoint, or starts again where it wrote none."""
    if args.command == "export":
        return "; no version was written: free space, then export again"
    if args.command == "prepare":
        return "; the shards written are kept: free space, then run the same command again"
    if args.command != "train":
        return ""
    from tfvae.runs import RunDirectory

    run = RunDirectory(args.run_dir)
    last = run.checkpoint_path("last")
    if last.is_file():
        return (f"; nothing half-written was kept and the last good checkpoint is {last}: free "
                "space, then run again with --resume")
    again = "run again with --overwrite" if run.is_run() else "run the same command again"
    return f"; no checkpoint was written yet: free space, then {again}"


# The package's modules that are no subcommand.
_NOT_COMMANDS = {"flags"}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, as every other error of the command."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser():
    parser = _Parser(
        prog="tfvae", description="Auto-Encoding Variational Bayes on TensorFlow and Keras 3.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name not in _NOT_COMMANDS:
            importlib.import_module(f"{__name__}.{info.name}").register(subparsers)
    return parser


def add_run_argument(parser, checkpoint=True):
    """RUN_DIR, and ``--checkpoint``: which of the run's models the command uses."""
    from tfvae.options import CHECKPOINTS

    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by tfvae train")
    if checkpoint:
        parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="model",
                            help="the run's final model, its best or its last checkpoint "
                                 "(default: model)")


def add_out_argument(parser, suffix, default=None, what="output", required=None):
    """``--out`` (a file of ``suffix``) and ``--overwrite``: no command replaces a file it was not
    told to. ``--out`` is required when it has no ``default``, unless ``required`` says."""
    parser.add_argument("--out", required=default is None if required is None else required,
                        default=default,
                        help=f"{what} path ({suffix})"
                             + (f" (default: {default})" if default else ""))
    parser.add_argument("--overwrite", action="store_true",
                        help="replace what the command writes if it exists")


def import_tensorflow_quietly():
    """Import TensorFlow and TFP with its C++ start-up notes (CUDA probes, oneDNN) kept off stderr.

    TensorFlow writes them to file descriptor 2 before any log level applies, so they would bury
    the one-line errors this command prints. TF_CPP_MIN_LOG_LEVEL=0 shows them again.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        import tensorflow  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf
        import tensorflow_probability as tfp

        tf.config.list_physical_devices()  # the device probe writes its own notes
        tfp.distributions.Normal(0.0, 1.0)  # TFP's first use loads tf_keras, which writes more
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv=None):
    from tfvae.cli.flags import speaking_as
    from tfvae.interruption import Interrupted, stop_on_signals

    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    args = build_parser().parse_args(argv)
    args.argv = argv  # what was given, for commands that tell a given flag from a default
    # SIGTERM (schedulers, `kill`, preemption) and SIGINT unwind as an exception: what a command
    # was writing is removed or recorded, and it exits with 128 + the signal's number.
    # Messages of the library name this command's flags, not its Python arguments.
    with stop_on_signals(), speaking_as(args.command):
        try:
            return _run(args)
        except Interrupted as e:
            print(f"tfvae {args.command}: {e}", file=sys.stderr)
            return e.exit_status


def _run(args):
    import_tensorflow_quietly()
    # Imported here so `tfvae --help` and argument errors stay fast (TensorFlow is slow to load).
    import tensorflow as tf

    from tfvae.data.image_folders import unreadable_in
    from tfvae.errors import InputError
    from tfvae.training.stops import TrainingDiverged

    try:
        return args.func(args) or 0
    except InputError as e:
        print(f"tfvae {args.command}: error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"tfvae {args.command}: training stopped: {e}", file=sys.stderr)
        return 1
    except tf.errors.OpError as e:
        # A streamed file found unreadable only as training read it (its header was fine).
        unreadable = unreadable_in(e)
        if unreadable is None:
            raise
        print(f"tfvae {args.command}: error: {unreadable}", file=sys.stderr)
        return 2
    except OSError as e:  # what the operating system refused: a full disk, a read-only place
        where = f"{e.filename}: " if e.filename else ""
        print(f"tfvae {args.command}: error: {where}{e.strerror or e}"
              + (_after_no_space(args) if e.errno in _NO_SPACE else ""),
              file=sys.stderr)
        return 1 if e.errno in _NO_SPACE else 2
