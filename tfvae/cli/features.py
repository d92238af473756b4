"""``tfvae features``, ``tfvae probe`` and ``tfvae finetune``: the latent code for other
learners."""

from tfvae.cli import add_out_argument, add_run_argument


def _add_run_and_data(p):
    add_run_argument(p)
    p.add_argument("--dataset", help="dataset name or path (default: the run's dataset)")
    p.add_argument("--train-examples", type=int, help="use the first N training examples")
    p.add_argument("--test-examples", type=int, help="use the first N test examples")


def _add_experiment(p, labels, steps):
    p.add_argument("--labels", nargs="+", default=labels,
                   help=f"labelled subset sizes, or 'all' (default: {' '.join(labels)})")
    p.add_argument("--steps", type=int, default=steps,
                   help=f"training steps (default: {steps})")
    p.add_argument("--seed", type=int, default=0)


def register(subparsers):
    p = subparsers.add_parser(
        "features", help="write the latent means of a dataset's images to an .npz or for "
                         "TensorBoard's Embedding Projector",
        description="Write z_train, z_test (the means of q(z|x), or an autoencoder's codes) and "
                    "y_train, y_test (when the dataset has labels) to an .npz file (--out), and/or "
                    "the test images' means with their labels and images for TensorBoard's "
                    "Embedding Projector to a directory (--tensorboard; the first 10,000 test "
                    "images at most).")
    _add_run_and_data(p)
    add_out_argument(p, ".npz", what="features", required=False)
    p.add_argument("--tensorboard", metavar="DIR",
                   help="write the Embedding Projector's files to DIR (view with "
                        "`tensorboard --logdir DIR`)")
    p.set_defaults(func=features)

    p = subparsers.add_parser(
        "probe", help="accuracy of a linear classifier on z versus on raw pixels",
        description="Train softmax regression on class-balanced labelled subsets, on the latent "
                    "means and on the raw pixels, and print the test accuracies.")
    _add_run_and_data(p)
    _add_experiment(p, ["100", "1000", "all"], 2000)
    p.set_defaults(func=probe)

    p = subparsers.add_parser(
        "finetune", help="accuracy of a classifier started from the encoder versus from random",
        description="Train the encoder's body plus a softmax layer on class-balanced labelled "
                    "subsets, from the encoder's weights and from a random start, and print the "
                    "test accuracies.")
    _add_run_and_data(p)
    _add_experiment(p, ["100", "1000"], 1000)
    p.set_defaults(func=finetune)


def _load(args):
    from tfvae.applications.inputs import load_code_run, run_dataset

    model, _ = load_code_run(args.run_dir, checkpoint=args.checkpoint)
    dataset = run_dataset(model, args.run_dir, args.dataset, args.train_examples,
                          args.test_examples)
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
    from tfvae.errors import InputError
    from tfvae.applications.features import latent_means
    from tfvae.applications.projector import check_projector_dir
    from tfvae.storage import check_output, write_npz

    if args.out is None and args.tensorboard is None:
        raise InputError("--out", "an .npz path, or --tensorboard DIR (or both)", "neither")
    out = args.out and check_output(args.out, ".npz", overwrite=args.overwrite)
    if args.tensorboard is not None:
        check_projector_dir(args.tensorboard, overwrite=args.overwrite)
    model, dataset = _load(args)
    if args.tensorboard is not None:
        _projector(args, model, dataset)
    if out is None:
        return 0
    arrays = {"z_train": latent_means(model, dataset.x_train),
              "z_test": latent_means(model, dataset.x_test)}
    if dataset.y_train is not None and dataset.y_test is not None:
        arrays.update(y_train=dataset.y_train, y_test=dataset.y_test)
    write_npz(out, overwrite=args.overwrite, **arrays)
    print(f"tfvae features: {len(arrays['z_train'])} train and {len(arrays['z_test'])} test codes "
          f"of {arrays['z_train'].shape[1]} dimensions ({dataset.name}) written to {out}")
    return 0


def _projector(args, model, dataset):
    from tfvae.applications.projector import write_projector

    shown = write_projector(model, dataset.x_test, dataset.y_test, args.tensorboard,
                            overwrite=args.overwrite, dataset=dataset.name)
    print(f"tfvae features: projector of {shown['description']} written to {args.tensorboard}")


def _accuracies(args, experiment, title, columns):
    """Run ``experiment`` (``tfvae.applications.features.probe`` or ``finetune``) and print its table."""
    from tfvae.checks import check_int, check_seed

    labels = _labels(args.labels)
    check_int("--steps", args.steps)
    check_seed("--seed", args.seed)
    model, dataset = _load(args)
    rows = experiment(model, dataset, labels, steps=args.steps, seed=args.seed)
    print(f"{title}, test accuracy on {len(dataset.x_test)} {dataset.name} images")
    print(f"{'labels':>8}  " + "  ".join(f"{column:>7}" for column in columns))
    for row in rows:
        print(f"{row['labels']:>8}  " + "  ".join(f"{row[column]:>7.4f}" for column in columns))
    return 0


def probe(args):
    from tfvae.applications.features import probe as run_probe

    return _accuracies(args, run_probe, "linear classifier", ("z", "pixels"))


def finetune(args):
    from tfvae.applications.features import finetune as run_finetune

    return _accuracies(args, run_finetune, "encoder body + softmax", ("encoder", "random"))
