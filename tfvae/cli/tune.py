"""``tfvae tune``: a hyperparameter search over train's settings (``tfvae.training.search``)."""

import sys


def register(subparsers):
    p = subparsers.add_parser(
        "tune", help="search train's settings over a space file (Optuna); resumable",
        description="Train a trial per point of the search space into DIR/trials/NNNN (each an "
                    "ordinary run directory), pruning trials whose epoch metric falls behind; "
                    "the study is kept in DIR/study.db, so the same command continues a killed "
                    "search. DIR/trials.csv and DIR/trials.png summarize the trials.")
    p.add_argument("--space", metavar="FILE",
                   help="the search space, a JSON file of settings (docs/tuning.md); needed to "
                        "start a search, and to resume one must be its own or left out")
    p.add_argument("--out", dest="out_dir", required=True, metavar="DIR",
                   help="the search directory")
    p.add_argument("--trials", type=int, required=True, metavar="N",
                   help="trials wanted in all, completed or pruned, those already done included")
    p.add_argument("--quiet", action="store_true", help="no line per trial")
    p.set_defaults(func=run)


def run(args):
    from tfvae.training.search import tune

    try:
        tune(args.out_dir, args.space, trials=args.trials, verbose=0 if args.quiet else 1)
    except ModuleNotFoundError as e:
        if e.name != "optuna":
            raise
        print(f"tfvae tune: error: {e}", file=sys.stderr)
        return 2
    return 0
