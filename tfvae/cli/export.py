"""``tfvae export``: a run's model as a SavedModel in TF Serving's layout (BASE/NAME/VERSION)."""

from tfvae import options
from tfvae.cli import add_run_argument


def register(subparsers):
    p = subparsers.add_parser(
        "export", help="export a run's model as a versioned SavedModel for TF Serving",
        description="Write RUN_DIR's model to BASE_DIR/NAME/VERSION with the signatures encode "
                    "(serving_default), decode, sample, reconstruct and log_likelihood.")
    add_run_argument(p)
    p.add_argument("--model-name", required=True, metavar="NAME",
                   help="the model's name in TF Serving")
    p.add_argument("--base-dir", default="export", help="TF Serving's base directory "
                                                        "(default: export)")
    p.add_argument("--version", type=int,
                   help="version number (default: one more than the highest existing)")
    p.add_argument("--num-samples", type=int, default=options.EXPORT_LOG_LIKELIHOOD_SAMPLES,
                   help="importance samples k of the log_likelihood signature (default: "
                        f"{options.EXPORT_LOG_LIKELIHOOD_SAMPLES})")
    p.set_defaults(func=run)


def run(args):
    from tfvae.export import export_run

    path = export_run(args.run_dir, args.model_name, base_dir=args.base_dir,
                      version=args.version, num_samples=args.num_samples,
                      checkpoint=args.checkpoint)
    print(f"tfvae export: {args.model_name} version {path.name} written to {path}")
    return 0
