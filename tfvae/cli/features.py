"""``tfvae features``, ``tfvae probe`` and ``tfvae finetune``: the latent code for other
learners."""

from tfvae import options


def _add_data_args(p):
    p.add_argument("--dataset", help="dataset name or path (default: the run's dataset)")
    p.add_argument("--train-examples", type=int, help="use the first N training examples")
    p.add_argument("--test-examples", type=int, help="use the first N test examples")
    p.add_argument("--checkpoint", choices=options.CHECKPOINTS, default="model")


def register(subparsers):
    p = subparsers.add_parser(
        "features", help="write the latent means of a dataset's images to an .npz",
        description="Write z_train, z_test (the means of q(z|x), or an autoencoder's codes) and "
                    "y_train, y_test (when the dataset has labels) to an .npz file.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    _add_data_args(p)
    p.add_argument("--out", required=True, help=".npz path")
    p.set_defaults(func=features)

    p = subparsers.add_parser(
        "probe", help="accuracy of a linear classifier on z versus on raw pixels",
        description="Train softmax regression on class-balanced labelled subsets, on the latent "
                    "means and on the raw pixels, and print the test accuracies.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    _add_data_args(p)
    p.add_argument("--labels", nargs="+", default=["100", "1000", "all"],
                   help="labelled subset sizes, or 'all' (default: 100 1000 all)")
    p.add_argument("--steps", type=int, default=2000, help="training steps (default: 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=probe)

    p = subparsers.add_parser(
        "finetune", help="accuracy of a classifier started from the encoder versus from random",
        description="Train the encoder's body plus a softmax layer on class-balanced labelled "
                    "subsets, from the encoder's weights and from a random start, and print the "
                    "test accuracies.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    _add_data_args(p)
    p.add_argument("--labels", nargs="+", default=["100", "1000"],
                   help="labelled subset sizes, or 'all' (default: 100 1000)")
    p.add_argument("--steps", type=int, default=1000, help="training steps (default: 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=finetune)


def _load(args):
    from tfvae.files import load_code_run, run_dataset

    model, config = load_code_run(args.run_dir, checkpoint=args.checkpoint)
    dataset = run_dataset(model, config, args.dataset, args.train_examples, args.test_examples)
    return model, dataset


def _labels(values):
    from tfvae.errors import InputError

    out = []
    for value in values:
        if value == "all":
            out.append(None)
        elif value.isdigit() and int(value) > 0:
            out.append(int(value))
        else:
            raise InputError("--labels", "positive integers or 'all'", repr(value))
    return out


def features(args):
    from tfvae.features import latent_means
    from tfvae.files import check_out
    from tfvae.storage import write_npz

    out = check_out(args.out, ".npz")
    model, dataset = _load(args)
    arrays = {"z_train": latent_means(model, dataset.x_train),
              "z_test": latent_means(model, dataset.x_test)}
    if dataset.y_train is not None and dataset.y_test is not None:
        arrays.update(y_train=dataset.y_train, y_test=dataset.y_test)
    write_npz(out, **arrays)
    print(f"tfvae features: {len(arrays['z_train'])} train and {len(arrays['z_test'])} test codes "
          f"of {arrays['z_train'].shape[1]} dimensions ({dataset.name}) written to {out}")
    return 0


def probe(args):
    from tfvae.checks import check_int
    from tfvae.features import probe as run_probe

    labels = _labels(args.labels)
    check_int("--steps", args.steps)
    model, dataset = _load(args)
    rows = run_probe(model, dataset, labels, steps=args.steps, seed=args.seed)
    print(f"linear classifier, test accuracy on {len(dataset.x_test)} {dataset.name} images")
    print(f"{'labels':>8}  {'z':>7}  {'pixels':>7}")
    for row in rows:
        print(f"{row['labels']:>8}  {row['z']:>7.4f}  {row['pixels']:>7.4f}")
    return 0


def finetune(args):
    from tfvae.checks import check_int
    from tfvae.features import finetune as run_finetune

    labels = _labels(args.labels)
    check_int("--steps", args.steps)
    model, dataset = _load(args)
    rows = run_finetune(model, dataset, labels, steps=args.steps, seed=args.seed)
    print(f"encoder body + softmax, test accuracy on {len(dataset.x_test)} {dataset.name} images")
    print(f"{'labels':>8}  {'encoder':>7}  {'random':>7}")
    for row in rows:
        print(f"{row['labels']:>8}  {row['encoder']:>7.4f}  {row['random']:>7.4f}")
    return 0
