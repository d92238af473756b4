"""``tfvae sample`` and ``tfvae reconstruct``: image grids from a trained run."""


def register(subparsers):
    p = subparsers.add_parser("sample", help="write a grid of images decoded from z ~ p(z)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--num", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="samples.png", help="PNG path (default: samples.png)")
    p.set_defaults(func=sample)

    p = subparsers.add_parser("reconstruct",
                              help="write test images beside their reconstructions")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--num", type=int, default=32, help="test images to reconstruct")
    p.add_argument("--out", default="reconstructions.png", help="PNG path")
    p.set_defaults(func=reconstruct)


def sample(args):
    from tfvae.checks import check_int
    from tfvae.images import save_grid
    from tfvae.runs import load_run

    check_int("--num", args.num)
    model, _ = load_run(args.run_dir)
    path = save_grid(model.sample(args.num, seed=args.seed).numpy(), args.out)
    print(f"tfvae sample: {args.num} samples written to {path}")
    return 0


def reconstruct(args):
    import numpy as np

    from tfvae.checks import check_int
    from tfvae.images import save_grid
    from tfvae.runs import RunDirectory

    check_int("--num", args.num)
    run = RunDirectory(args.run_dir)
    model = run.load_model()
    x = run.load_dataset(test_examples=args.num).x_test
    recon = model.reconstruct(x).numpy()
    # Originals and reconstructions in alternating rows of 8.
    pairs = [part for i in range(0, len(x), 8) for part in (x[i:i + 8], recon[i:i + 8])]
    save_grid(np.concatenate(pairs), args.out, columns=8)
    print(f"tfvae reconstruct: {len(x)} originals (odd rows) and reconstructions written to "
          f"{args.out}")
    return 0
