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
    from tfvae.images import save_grid
    from tfvae.runs import RunDirectory
    from tfvae.storage import check_output

    check_int("--num", args.num)
    check_seed("--seed", args.seed)
    out = check_output(args.out, ".png", overwrite=args.overwrite)
    model = RunDirectory(args.run_dir).load_model(args.checkpoint)
    save_grid(model.sample(args.num, seed=args.seed).numpy(), out)
    print(f"tfvae sample: {args.num} samples written to {out}")
    return 0


def reconstruct(args):
    import numpy as np

    from tfvae.checks import check_int
    from tfvae.images import save_grid
    from tfvae.runs import RunDirectory
    from tfvae.storage import check_output

    check_int("--num", args.num)
    out = check_output(args.out, ".png", overwrite=args.overwrite)
    run = RunDirectory(args.run_dir)
    model = run.load_model(args.checkpoint)
    x = run.load_dataset(args.dataset, test_examples=args.num).x_test
    recon = model.reconstruct(x).numpy()
    # Originals and reconstructions in alternating rows of up to 8; a short last pair of rows
    # is filled with blank (white) cells so that each reconstruction sits under its original.
    columns = min(8, len(x))
    rows = [np.concatenate([part, np.ones((columns - len(part), *part.shape[1:]), part.dtype)])
            for i in range(0, len(x), columns) for part in (x[i:i + columns], recon[i:i + columns])]
    save_grid(np.concatenate(rows), out, columns=columns)
    print(f"tfvae reconstruct: {len(x)} originals (odd rows) and reconstructions written to "
          f"{out}")
    return 0
