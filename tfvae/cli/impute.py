"""``tfvae impute``: fill the missing values of a file with a run trained on data with holes
(``tfvae.applications.imputation``)."""

from tfvae.cli import add_out_argument, add_run_argument


def register(subparsers):
    from tfvae.options import IMPUTE_SAMPLES as DEFAULT_SAMPLES

    p = subparsers.add_parser(
        "impute", help="fill the missing values of a table or .npz with a run's model",
        description="Fill each missing value of --input (an empty cell of a table, NaN in an "
                    ".npz's x) by its conditional mean given the row's observed values, or "
                    "write --draws completed copies of each row (multiple imputation); observed "
                    "values pass through unchanged. The run must be trained with "
                    "--allow-missing.")
    add_run_argument(p)
    p.add_argument("--input", required=True,
                   help="a table with the run's columns (.csv, .tsv, .parquet) or an .npz with x")
    p.add_argument("--num-samples", type=int, default=DEFAULT_SAMPLES,
                   help=f"draws of z per row for the importance weights (default: "
                        f"{DEFAULT_SAMPLES})")
    p.add_argument("--draws", type=int,
                   help="write this many completed copies of each row instead of the mean (a "
                        "draw column numbers them)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=100)
    add_out_argument(p, ".csv or .npz", what="completed rows")
    p.set_defaults(func=impute)


def impute(args):
    from pathlib import Path

    import numpy as np

    from tfvae.applications.imputation import impute as impute_rows
    from tfvae.applications.inputs import read_run_examples, write_rows
    from tfvae.errors import InputError
    from tfvae.runs import TABLE_COLUMNS, RunDirectory
    from tfvae.storage import check_output, write_npz

    from tfvae.checks import check_int, check_seed

    # The settings, before the run is read.
    check_int("num_samples", args.num_samples)
    check_int("draws", args.draws, optional=True)
    check_int("batch_size", args.batch_size)
    check_seed("seed", args.seed)
    suffix = Path(args.out).suffix.lower()
    if suffix not in (".csv", ".npz"):
        raise InputError("--out", "a .csv or .npz path", repr(args.out))
    out = check_output(args.out, suffix, overwrite=args.overwrite)
    run = RunDirectory(args.run_dir)
    model = run.load_model(args.checkpoint)
    if suffix == ".csv" and len(model.image_shape) > 1:
        raise InputError("--out", "an .npz path (the run's model takes images)", repr(args.out))
    x, _, ids = read_run_examples(args.input, run, model)
    filled = impute_rows(model, x, num_samples=args.num_samples, draws=args.draws,
                         seed=args.seed, batch_size=args.batch_size)
    missing = int(np.isnan(x).sum())
    if suffix == ".npz":  # x [N, *E], or [M, N, *E] for M draws
        write_npz(out, overwrite=args.overwrite, x=filled)
    else:  # rows of the table's columns, after a draw number and the id where there are
        copies = args.draws or 1
        leading = {"draw": None if args.draws is None else np.repeat(np.arange(copies), len(x)),
                   "id": None if ids is None else np.tile(ids, copies)}
        write_rows(out, filled.reshape(-1, filled.shape[-1]),
                   run.read_config().get(TABLE_COLUMNS), overwrite=args.overwrite,
                   leading={name: values for name, values in leading.items()
                            if values is not None})
    copies = "the mean" if args.draws is None else f"{args.draws} draws"
    print(f"tfvae impute: {missing} missing values of {len(x)} rows filled ({copies}, "
          f"{args.num_samples} draws of z, seed {args.seed}); written to {out}")
    return 0
