"""``tfvae sample`` and ``tfvae reconstruct``: image grids from a trained run."""

import math

from tfvae.cli import add_out_argument, add_run_argument


def register(subparsers):
    p = subparsers.add_parser("sample", help="write a grid of images decoded from z ~ p(z)")
    add_run_argument(p)
    p.add_argument("--num", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", type=int,
                   help="a conditional run's class to draw (default: a row per class)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="scale of the noise z is drawn from: below 1, draws nearer p(z)'s modes "
                        "(default: 1, p(z) itself)")
    add_out_argument(p, ".png", default="samples.png", what="image grid")
    p.set_defaults(func=sample)

    p = subparsers.add_parser("reconstruct",
                              help="write test images beside their reconstructions")
    add_run_argument(p)
    p.add_argument("--num", type=int, default=32, help="test images to reconstruct")
    p.add_argument("--dataset", help="the run's dataset where it is now, if it moved")
    add_out_argument(p, ".png", default="reconstructions.png", what="image grid")
    p.set_defaults(func=reconstruct)


def sample(args):
    from tfvae.checks import check_count, check_number, check_seed
    from tfvae.images import class_rows, sample_images, save_grid
    from tfvae.runs import RunDirectory
    from tfvae.storage import check_output

    check_count("--num", args.num, what="images")
    check_seed("--seed", args.seed)
    check_number("--temperature", args.temperature, at_least=0)
    run = RunDirectory(args.run_dir)
    model = run.load_model(args.checkpoint)
    if len(model.image_shape) == 1:
        return _sample_rows(args, run, model)
    out = check_output(args.out, ".png", overwrite=args.overwrite)
    check_count("--num", args.num, math.prod(model.image_shape), what="images")
    labels, columns, what = args.label, None, ""
    if model.conditional and labels is None:
        labels, columns = class_rows(model, args.num)
        what = f", a row per class of {model.num_classes}"
    elif labels is not None:
        model.label_codes(labels, args.num, argument="--label")  # in range, or refused
        what = f" of class {args.label}"
    save_grid(sample_images(model, args.num, seed=args.seed, labels=labels,
                            temperature=args.temperature), out,
              columns=columns, overwrite=args.overwrite)
    at = "" if args.temperature == 1 else f" at temperature {args.temperature:g}"
    print(f"tfvae sample: {args.num} samples{what}{at} written to {out}")
    return 0


def _sample_rows(args, run, model):
    """``tfvae sample`` of a model of vectors: draws of x, as rows of a .csv (a table run's
    columns, each value of its type) or an .npz."""
    from pathlib import Path

    from tfvae.applications.inputs import write_rows
    from tfvae.applications.synthesis import draw_rows
    from tfvae.errors import InputError
    from tfvae.runs import TABLE_COLUMNS
    from tfvae.storage import check_output

    suffix = Path(args.out).suffix.lower()
    if suffix not in (".csv", ".npz"):
        raise InputError("--out", "a .csv or .npz path (the run's model draws vectors, not "
                         "images)", repr(args.out))
    out = check_output(args.out, suffix, overwrite=args.overwrite)
    if model.conditional and args.label is None:
        raise InputError("--label", "the class to draw, for a conditional run of vectors",
                         "none")
    rows = draw_rows(model, args.num, seed=args.seed, labels=args.label,
                     temperature=args.temperature)
    write_rows(out, rows, run.read_config().get(TABLE_COLUMNS), overwrite=args.overwrite)
    print(f"tfvae sample: {len(rows)} draws of x ~ p(x|z) written to {out}")
    return 0


def reconstruct(args):
    from tfvae.applications.inputs import require_pictures
    from tfvae.checks import check_count
    from tfvae.data.streams import WHERE_POSSIBLE, head
    from tfvae.images import reconstruction_grid, save_grid
    from tfvae.runs import RunDirectory
    from tfvae.storage import check_output

    check_count("--num", args.num, what="images")
    out = check_output(args.out, ".png", overwrite=args.overwrite)
    run = RunDirectory(args.run_dir)
    model = run.load_model(args.checkpoint)
    require_pictures(model, "a grid of pictures; tfvae evaluate and score take vectors")
    # Each image and its reconstruction.
    check_count("--num", args.num, 2 * math.prod(model.image_shape), what="images")
    # The first --num test images, read alone where the source can stream.
    dataset = run.load_dataset(args.dataset, test_examples=args.num, storage=WHERE_POSSIBLE)
    x = head(dataset.x_test, args.num)
    columns = min(8, len(x))
    # A conditional model reconstructs each image given its own label.
    save_grid(reconstruction_grid(model, x, columns=columns,
                                  labels=dataset.y_test if model.conditional else None),
              out, columns=columns, overwrite=args.overwrite)
    print(f"tfvae reconstruct: {len(x)} originals (odd rows) and reconstructions written to "
          f"{out}")
    return 0
