"""``tfvae export``: a run's model as a SavedModel in TF Serving's layout (BASE/NAME/VERSION), or
as a LiteRT or ONNX file (``--format``)."""

from tfvae import options
from tfvae.cli import add_run_argument
from tfvae.errors import InputError
from tfvae.export.formats import FORMATS

# What only a format of TF Serving's versioned layout takes.
_VERSIONED_ONLY = ("model_name", "base_dir", "version")


def register(subparsers):
    p = subparsers.add_parser(
        "export", help="export a run's model as a versioned SavedModel for TF Serving, or for "
                       "LiteRT or ONNX Runtime",
        description="Write RUN_DIR's model to BASE_DIR/NAME/VERSION with the signatures encode "
                    "(serving_default), decode, sample, reconstruct, log_likelihood and score "
                    "(the anomaly score, with an anomaly flag when the run has a threshold: "
                    "tfvae threshold); with "
                    "--format tflite, the same signatures in one .tflite file at --out; with "
                    "--format onnx, one SIGNATURE.onnx file each in the directory --out.")
    add_run_argument(p)
    p.add_argument("--format", choices=FORMATS.names(), default="savedmodel",
                   help="savedmodel (default), tflite (LiteRT), onnx, or any format registered "
                        "in tfvae.export.formats.FORMATS")
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
    from tfvae.export.formats import export_format, export_model

    member = export_format(args.format)
    # What only one kind of format takes: a versioned layout's name, base and version, or the
    # path and --overwrite of a format that writes where it is told.
    given = ([("--out", args.out), ("--overwrite", args.overwrite or None)] if member.versioned
             else [("--" + name.replace("_", "-"), getattr(args, name))
                   for name in _VERSIONED_ONLY])
    for flag, value in given:
        if value is not None:
            where = ("versions are written to BASE_DIR/NAME/VERSION, never replaced"
                     if member.versioned else "it writes --out")
            raise InputError(flag, f"no {flag} with --format {args.format} ({where})",
                             repr(value))
    if member.versioned:
        return _versioned(args)
    if args.out is None:
        raise InputError("--out", f"the path to write --format {args.format} to", "none")
    member.check(args.out, overwrite=args.overwrite)  # before the model is loaded
    from tfvae.export.metadata import run_metadata
    from tfvae.runs import RunDirectory

    run = RunDirectory(args.run_dir)
    model = run.load_model(args.checkpoint)
    # The run's metadata: its anomaly threshold sets the score signature's, as in a SavedModel.
    path = export_model(model, args.out, format=args.format, num_samples=args.num_samples,
                        overwrite=args.overwrite, metadata=run_metadata(run, args.checkpoint))
    print(f"tfvae export: {args.format} written to {path}")
    return 0


def _versioned(args):
    if args.model_name is None:
        raise InputError("--model-name", f"a name for --format {args.format} (the model's name "
                         "in TF Serving)", "none")
    from tfvae.export.versions import export_run

    path = export_run(args.run_dir, args.model_name, base_dir=args.base_dir or "export",
                      version=args.version, num_samples=args.num_samples,
                      checkpoint=args.checkpoint, format=args.format)
    print(f"tfvae export: {args.model_name} version {path.name} written to {path}")
    return 0
