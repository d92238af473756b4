"""``tfvae evaluate``: the ELBO of a trained run on a data split, its active units and KL per
dimension, and optionally log p(x)."""

import math
import sys

from tfvae import options
from tfvae.cli import add_run_argument


def register(subparsers):
    p = subparsers.add_parser("evaluate", help="print the ELBO (and log p(x)) of a run on a split")
    add_run_argument(p)
    p.add_argument("--dataset", help="the run's dataset where it is now, if it moved (default: "
                                     "as the run recorded it)")
    p.add_argument("--split", choices=["train", "test"], default="test")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--log-likelihood", action="store_true",
                   help="also estimate the marginal likelihood log p(x)")
    p.add_argument("--method", choices=options.LOG_LIKELIHOOD_METHODS, default="importance",
                   help="log p(x) estimator: importance sampling with q(z|x), or the paper's "
                        "HMC estimator of appendix D (default: importance)")
    p.add_argument("--num-samples", type=int, default=options.LOG_LIKELIHOOD_SAMPLES,
                   help="samples of z per example for log p(x) (default: "
                        f"{options.LOG_LIKELIHOOD_SAMPLES})")
    p.add_argument("--examples", type=int,
                   help="estimate log p(x) on the first N examples of the split (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


# A streamed split's active units and KL per dimension are computed on this many examples.
STREAMED_DIAGNOSTIC_EXAMPLES = 10_000


def run(args):
    from tfvae.checks import check_count, check_int, check_seed
    from tfvae.data import binarize, head, is_stream
    from tfvae.errors import InputError, counted
    from tfvae.evaluation.diagnostics import COLLAPSE, evaluate_elbo, latent_diagnostics
    from tfvae.evaluation.likelihood import check_hmc_samples, log_likelihood
    from tfvae.layers.discretized import bits_per_dim
    from tfvae.runs import RunDirectory

    check_int("--examples", args.examples, optional=True)
    check_int("--batch-size", args.batch_size)
    check_seed("--seed", args.seed)
    if args.log_likelihood:
        check_count("--num-samples", args.num_samples, what="samples")
    run = RunDirectory(args.run_dir)
    model = run.load_model(args.checkpoint)
    check_count("--batch-size", args.batch_size, math.prod(model.image_shape), what="images")
    if args.log_likelihood and args.method == "hmc":  # refused before the bound's pass
        check_hmc_samples(args.num_samples, model.latent_dim)
    dataset = run.load_dataset(args.dataset)
    x = dataset.x_train if args.split == "train" else dataset.x_test
    # A conditional model is evaluated on (image, label) pairs: log p(x|y).
    y = ((dataset.y_train if args.split == "train" else dataset.y_test) if model.conditional
         else None)
    dynamic = args.split == "train" and dataset.binarize == "dynamic"
    result = evaluate_elbo(model, x, batch_size=args.batch_size, dynamic_binarize=dynamic,
                           labels=y)
    if not model.has_bound:  # an autoencoder: log p(x|f(x)) is all there is
        if args.log_likelihood:
            raise InputError("--log-likelihood", "a run of a model with a prior p(z) (a VAE)",
                             "an autoencoder run")
        print(f"{args.split} reconstruction: {result['reconstruction']:.4f} nats  "
              f"({counted(len(x), 'example')}, binarization {dataset.binarize})")
        return 0
    print(f"{args.split} elbo: {result['elbo']:.4f} nats  (reconstruction "
          f"{result['reconstruction']:.4f}, kl {result['kl']:.4f}; "
          f"{counted(len(x), 'example')}, binarization {dataset.binarize})")
    # A discrete 8-bit p(x|z) gives probabilities of levels: its bound reads in bits per value.
    eight_bit = model.decoder.likelihood.support == "eight_bit"
    dimensions = math.prod(model.image_shape)
    if eight_bit:
        print(f"{args.split} elbo: {bits_per_dim(result['elbo'], dimensions):.4f} bits per "
              "dimension")
    # A streamed split's units are judged on its first examples: their means fit in memory.
    shown = x if not is_stream(x) else x.head(STREAMED_DIAGNOSTIC_EXAMPLES)
    diagnostics = latent_diagnostics(model, shown, labels=None if y is None else y[:len(shown)])
    kl_dims = diagnostics["kl_per_dimension"]
    # A unit is active when its mean varies over the examples: one example cannot show it.
    units = (f"{diagnostics['active_units']} of {model.latent_dim}" if len(shown) > 1
             else "not counted on one example")
    print(f"active units: {units}"
          + (f" (on the first {len(shown)} examples)" if len(shown) < len(x) else "")
          + ("" if kl_dims is None else
             "; KL per dimension (nats): " + " ".join(f"{v:.2f}" for v in kl_dims)))
    if diagnostics["active_units"] == 0 and len(shown) > 1:
        print(f"tfvae evaluate: warning: {COLLAPSE}", file=sys.stderr)
    if args.log_likelihood:
        x = head(x, len(x) if args.examples is None else args.examples)
        if dynamic:
            x = binarize(x, args.seed)
        ll = log_likelihood(model, x, args.num_samples, method=args.method,
                            batch_size=min(args.batch_size, 100), seed=args.seed, verbose=1,
                            labels=None if y is None else y[:args.examples])
        extra = f", HMC acceptance {ll.acceptance:.2f}" if ll.acceptance is not None else ""
        spread = f"± {ll.stderr:.4f} s.e." if len(x) > 1 else "one example: no s.e."
        print(f"{args.split} log p(x): {ll.mean:.4f} nats ({spread}; {args.method}, "
              f"{counted(args.num_samples, 'sample')} per example, {counted(len(x), 'example')}"
              f"{extra})")
        if eight_bit:
            print(f"{args.split} log p(x): {bits_per_dim(ll.mean, dimensions):.4f} bits per "
                  "dimension")
    return 0
