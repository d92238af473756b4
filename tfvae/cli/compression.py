"""``tfvae compress`` and ``tfvae decompress``: images to quantized latent codes and back."""

from tfvae import options
from tfvae.cli import add_out_argument, add_run_argument


def register(subparsers):
    p = subparsers.add_parser(
        "compress", help="write images as latent means quantized to B bits per dimension",
        description="Encode the images x of an .npz and write their latent means, quantized to "
                    "--bits bits per dimension, in the tfvae code file format "
                    "(see tfvae.applications.compression).")
    add_run_argument(p)
    p.add_argument("--input", required=True, help=".npz with images x")
    p.add_argument("--bits", type=int, required=True, help="bits per latent dimension, 1..16")
    p.add_argument("--quantizer", choices=options.QUANTIZERS, default="uniform")
    add_out_argument(p, ".tfvae", what="code file")
    p.set_defaults(func=compress)

    p = subparsers.add_parser(
        "decompress", help="decode a code file back to images",
        description="Decode each code of a file written by `tfvae compress` with the same run's "
                    "model, and write the images (the mean of p(x|z)) as x in an .npz file.")
    add_run_argument(p)
    p.add_argument("--input", required=True, help="code file written by tfvae compress")
    add_out_argument(p, ".npz", what="images")
    p.set_defaults(func=decompress)


def compress(args):
    from tfvae.applications.compression import check_bits, compress as run_compress
    from tfvae.applications.inputs import load_code_run, read_images
    from tfvae.storage import check_output, write_bytes

    check_bits(args.bits)
    out = check_output(args.out, ".tfvae", overwrite=args.overwrite)
    model, _ = load_code_run(args.run_dir, checkpoint=args.checkpoint)
    x, _ = read_images(args.input, model)
    blob = run_compress(model, x, args.bits, args.quantizer)
    write_bytes(out, blob, overwrite=args.overwrite)
    print(f"tfvae compress: {len(x)} images -> {len(blob)} bytes ({len(blob) / len(x):.2f} "
          f"bytes per image, {args.bits} bits x {model.latent_dim} dimensions) written to {out}")
    return 0


def decompress(args):
    from pathlib import Path

    from tfvae.applications.compression import decompress_to_npz, read_code_file
    from tfvae.errors import InputError
    from tfvae.applications.inputs import load_code_run
    from tfvae.storage import check_output

    out = check_output(args.out, ".npz", overwrite=args.overwrite)
    source = Path(args.input)
    if not source.is_file():
        raise InputError("--input", "a code file written by tfvae compress",
                         f"{str(source)!r}, which is not a file")
    model, _ = load_code_run(args.run_dir, checkpoint=args.checkpoint)
    count = decompress_to_npz(model, read_code_file(source), out, overwrite=args.overwrite)
    print(f"tfvae decompress: {count} images written to {out}")
    return 0
