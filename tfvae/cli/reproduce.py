"""``tfvae reproduce``: the paper's Figures 2, 3 and 4, their curves and a results table."""

from tfvae import options

BUDGET_HELP = ("smoke: every code path at toy size (under 2 minutes, for CI); cpu: all the "
               "paper's runs at 5x10^5 training samples each, 1/200 of the paper's 10^8 (under "
               "an hour on a 2-core CPU); long: 5x10^6 samples each (3 to 6 minutes per "
               "Figure 2 run on a 2-core CPU); "
               "paper: the paper's full budget, up to 10^8 samples per run (for a GPU)")


def register(subparsers):
    p = subparsers.add_parser(
        "reproduce", help="reproduce the paper's figures 2, 3 and 4",
        description="Train AEVB, wake-sleep and Monte Carlo EM as in Kingma & Welling (2013) and "
                    "write the figures (PNG), a CSV of every curve and results.md into --out. "
                    "Run the same command again to resume a killed run.")
    p.add_argument("experiment", choices=[*options.EXPERIMENTS, "all"],
                   help="fig2: lower bound, AEVB vs wake-sleep; fig3: marginal likelihood, "
                        "AEVB vs wake-sleep vs MCEM; manifold: figure 4's 2-D latent spaces")
    p.add_argument("--budget", choices=options.BUDGETS, default="smoke",
                   help=BUDGET_HELP)
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=run)


def run(args):
    from tfvae.paper import reproduce

    log = (lambda message: None) if args.quiet else None
    written = reproduce(args.experiment, budget=args.budget, out_dir=args.out, seed=args.seed,
                        log=log)
    for path in written:
        print(path)
    return 0
