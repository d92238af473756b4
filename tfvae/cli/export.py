"""``tfvae export``: a run's model as a SavedModel in TF Serving's layout (BASE/NAME/VERSION), or
as a LiteRT or ONNX file (``--format``)."""

from tfvae import options
from tfvae.cli import add_run_argument
from tfvae.errors import InputError

# What only a SavedModel takes.
_SAVEDMODEL_ONLY = ("model_name", "base_dir", "version")


def register(subparsers):
    p = subparsers.add_parser(
        "export", help="export a run's model as a versioned SavedModel for TF Serving, or for "
                       "LiteRT or ONNX Runtime",
        description="Write RUN_DIR's model to BASE_DIR/NAME/VERSION with the signatures encode "
                    "(serving_default), decode, sample, reconstruct and log_likelihood; with "
                    "--format tflite, the same signatures in one .tflite file at --out; with "
                    "--format onnx, one SIGNATURE.onnx file each in the directory --out.")
    add_run_argument(p)
    p.add_argument("--format", choices=options.EXPORT_FORMATS, default="savedmodel",
                   help="savedmodel (default), tflite (LiteRT) or onnx")
    p.add_argument("--model-name", metavar="NAME",
                   help="the model's name in TF Serving (--format savedmodel)")
    p.add_argument("--base-dir", help="TF Serving's base directory (default: export)")
    p.add_argument("--version", type=int,
                   help="version number (default: one more than the highest existing)")
    p.add_argument("--out", help="the .tflite file (--format tflite) or the directory of .onnx "
                                 "files (--format onnx)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing .tflite or .onnx files")
    p.add_argument("--num-samples", type=int, default=options.EXPORT_LOG_LIKELIHOOD_SAMPLES,
                   help="importance samples k of the log_likelihood signature (default: "
                        f"{options.EXPORT_LOG_LIKELIHOOD_SAMPLES})")
    p.set_defaults(func=run)


def run(args):
    if args.format == "savedmodel":
        return _savedmodel(args)
    for name in _SAVEDMODEL_ONLY:
        value = getattr(args, name)
        if value is not None:
            flag = "--" + name.replace("_", "-")
            raise InputError(flag, f"no {flag} with --format {args.format} (it writes --out)",
                             repr(value))
    if args.out is None:
        raise InputError("--out", f"the path to write --format {args.format} to", "none")
    from tfvae.export.runtimes import export_run

    paths = export_run(args.run_dir, args.format, args.out, num_samples=args.num_samples,
                       checkpoint=args.checkpoint, overwrite=args.overwrite)
    print(f"tfvae export: {args.format} written to " + ", ".join(str(p) for p in paths))
    return 0


def _savedmodel(args):
    for flag, value in (("--out", args.out), ("--overwrite", args.overwrite or None)):
        if value is not None:
            raise InputError(flag, f"no {flag} with --format savedmodel (versions are written "
                             "to BASE_DIR/NAME/VERSION, never replaced)", repr(value))
    if args.model_name is None:
        raise InputError("--model-name", "a name for --format savedmodel (the model's name in "
                         "TF Serving)", "none")
    from tfvae.export.savedmodel import export_run

    path = export_run(args.run_dir, args.model_name, base_dir=args.base_dir or "export",
                      version=args.version, num_samples=args.num_samples,
                      checkpoint=args.checkpoint)
    print(f"tfvae export: {args.model_name} version {path.name} written to {path}")
    return 0
