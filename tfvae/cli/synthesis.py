"""``tfvae interpolate`` and ``tfvae augment``: new samples between and around known ones."""

from tfvae import options
from tfvae.cli import add_out_argument, add_run_argument


def register(subparsers):
    p = subparsers.add_parser(
        "interpolate", help="write a grid of images along paths in z between two test images",
        description="Decode linear and/or spherical paths between the latent means of test "
                    "images I and J of the run's dataset. Each row: image I, the decoded path "
                    "(its ends are the reconstructions of I and J), image J.")
    add_run_argument(p)
    p.add_argument("--from", dest="source", type=int, required=True, metavar="I",
                   help="index of the first test image")
    p.add_argument("--to", dest="target", type=int, required=True, metavar="J",
                   help="index of the last test image")
    p.add_argument("--steps", type=int, default=10, help="decoded points per path (default: 10)")
    p.add_argument("--path", choices=[*options.INTERPOLATION_PATHS, "both"], default="both",
                   help="one row per path (default: both, linear first)")
    add_out_argument(p, ".png", what="image grid")
    p.set_defaults(func=interpolate)

    p = subparsers.add_parser(
        "augment", help="decode draws of q(z|x) around each input image",
        description="Write x (per-example decoded draws of q(z|x) per input), y (the inputs' "
                    "labels carried over, when --input has y) and source (the input index of "
                    "each sample) to an .npz file. Needs a VAE run; a conditional run draws "
                    "from q(z|x, y) and p(x|z, y), so --input needs y, or draws --per-class N "
                    "new images of every class from p(z).")
    add_run_argument(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help=".npz with images x and optional labels y")
    source.add_argument("--per-class", type=int, metavar="N",
                        help="a conditional run: N images of every class drawn from p(z)")
    p.add_argument("--per-example", type=int, default=10, help="samples per input (default: 10)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="scale of the posterior's standard deviation (default: 1)")
    p.add_argument("--seed", type=int, default=0)
    add_out_argument(p, ".npz", what="samples")
    p.set_defaults(func=augment)


def interpolate(args):
    import numpy as np

    from tfvae.errors import InputError
    from tfvae.applications.inputs import load_code_run, require_pictures, run_dataset
    from tfvae.images import save_grid
    from tfvae.checks import check_count
    from tfvae.storage import check_output
    from tfvae.applications.synthesis import interpolate as path_images

    out = check_output(args.out, ".png", overwrite=args.overwrite)
    paths = options.INTERPOLATION_PATHS if args.path == "both" else (args.path,)
    check_count("--steps", args.steps, minimum=2, what="images")  # before loading anything
    model, _ = load_code_run(args.run_dir, checkpoint=args.checkpoint)
    require_pictures(model, "a grid of pictures along the path")
    x_test = run_dataset(model, args.run_dir).x_test
    for flag, index in (("--from", args.source), ("--to", args.target)):
        if not 0 <= index < len(x_test):
            raise InputError(flag, f"a test-set index from 0 to {len(x_test) - 1}", index)
    x0, x1 = x_test[args.source], x_test[args.target]
    rows = [np.concatenate([x0[None], path_images(model, x0, x1, args.steps, path), x1[None]])
            for path in paths]
    save_grid(np.concatenate(rows), out, columns=args.steps + 2, overwrite=args.overwrite)
    print(f"tfvae interpolate: test images {args.source} -> {args.target}, {args.steps} steps, "
          f"rows {', '.join(paths)}, written to {out}")
    return 0


def augment(args):
    import numpy as np

    from tfvae.checks import check_int, check_seed
    from tfvae.errors import InputError
    from tfvae.applications.inputs import load_code_run, read_images
    from tfvae.storage import check_output, write_npz
    from tfvae.applications.synthesis import augment as run_augment, class_samples

    out = check_output(args.out, ".npz", overwrite=args.overwrite)
    check_int("--per-class", args.per_class, optional=True)
    check_int("--per-example", args.per_example)
    check_seed("--seed", args.seed)
    model, _ = load_code_run(args.run_dir, ("vae", "wake_sleep"), "augmentation samples q(z|x)",
                             checkpoint=args.checkpoint, conditional=True)
    if args.per_class is not None:
        if not model.conditional:
            raise InputError("--per-class", "a conditional run (trained with --conditional)",
                             f"{str(args.run_dir)!r}, an unconditional run")
        images, labels = class_samples(model, args.per_class, seed=args.seed)
        write_npz(out, overwrite=args.overwrite, x=images.astype(np.float32), y=labels)
        print(f"tfvae augment: {len(images)} samples ({args.per_class} per class of "
              f"{model.num_classes}) written to {out}")
        return 0
    x, y = read_images(args.input, model, labels=model.conditional)
    images, labels, source = run_augment(model, x, y, per_example=args.per_example,
                                         temperature=args.temperature, seed=args.seed)
    arrays = {"x": images.astype(np.float32), "source": source}
    if labels is not None:
        arrays["y"] = labels
    write_npz(out, overwrite=args.overwrite, **arrays)
    print(f"tfvae augment: {len(images)} samples ({args.per_example} per input, temperature "
          f"{args.temperature:g}) of {len(x)} inputs written to {out}")
    return 0
