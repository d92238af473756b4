"""``tfvae sample`` and ``tfvae reconstruct``: image grids from a trained run."""

from tfvae.cli import add_out_argument, add_run_argument


def register(subparsers):
    p = subparsers.add_parser("sample", help="write a grid of images decoded from z ~ p(z)")
    add_run_argument(p)
    p.add_argument("--num", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
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
    from tfvae.checks import check_int, check_seed
    from tfvae.images import sample_images, save_grid
    from tfvae.runs import RunDirectory
    from tfvae.storage import check_output

    check_int("--num", args.num)
    check_seed("--seed", args.seed)
    out = check_output(args.out, ".png", overwrite=args.overwrite)
    model = RunDirectory(args.run_dir).load_model(args.checkpoint)
    save_grid(sample_images(model, args.num, seed=args.seed), out)
    print(f"tfvae sample: {args.num} samples written to {out}")
    return 0


def reconstruct(args):
    from tfvae.checks import check_int
    from tfvae.images import reconstruction_grid, save_grid
    from tfvae.runs import RunDirectory
    from tfvae.storage import check_output

    check_int("--num", args.num)
    out = check_output(args.out, ".png", overwrite=args.overwrite)
    run = RunDirectory(args.run_dir)
    model = run.load_model(args.checkpoint)
    x = run.load_dataset(args.dataset, test_examples=args.num).x_test
    save_grid(reconstruction_grid(model, x, columns=8), out, columns=8)
    print(f"tfvae reconstruct: {len(x)} originals (odd rows) and reconstructions written to "
          f"{out}")
    return 0
