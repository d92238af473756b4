"""``tfvae evaluate``: the ELBO of a trained run on a data split."""


def register(subparsers):
    p = subparsers.add_parser("evaluate", help="print the ELBO of a run on a split")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--split", choices=["train", "test"], default="test")
    p.add_argument("--checkpoint", choices=["model", "best", "last"], default="model")
    p.add_argument("--batch-size", type=int, default=500)
    p.set_defaults(func=run)


def run(args):
    from tfvae.evaluation import evaluate_elbo
    from tfvae.training import load_run, load_run_dataset

    model, config = load_run(args.run_dir, args.checkpoint)
    dataset = load_run_dataset(config)
    x = dataset.x_train if args.split == "train" else dataset.x_test
    result = evaluate_elbo(model, x, batch_size=args.batch_size,
                           dynamic_binarize=args.split == "train" and dataset.binarize == "dynamic")
    if "elbo" not in result:  # an autoencoder: log p(x|f(x)) is all there is
        print(f"{args.split} reconstruction: {result['reconstruction']:.4f} nats  ({len(x)} "
              f"examples, binarization {dataset.binarize})")
        return 0
    print(f"{args.split} elbo: {result['elbo']:.4f} nats  (reconstruction "
          f"{result['reconstruction']:.4f}, kl {result['kl']:.4f}; {len(x)} examples, "
          f"binarization {dataset.binarize})")
    return 0
