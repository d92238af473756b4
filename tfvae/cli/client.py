"""``tfvae client``: call a model served by TF Serving over REST (http://) or gRPC (grpc://)."""

import argparse
from pathlib import Path

from tfvae.cli import add_out_argument

_IMAGE_SUFFIXES = (".png", ".pgm", ".jpg", ".jpeg", ".bmp")


def register(subparsers):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", required=True,
                        help="http://HOST:8501 (REST) or grpc://HOST:8500 (gRPC)")
    common.add_argument("--model-name", required=True, metavar="NAME")
    common.add_argument("--version", type=int, help="a version number (default: the latest)")
    common.add_argument("--format", choices=["row", "columnar"], default="row",
                        help="REST request format (default: row)")
    common.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for an answer (default: 60)")

    p = subparsers.add_parser("client", help="call a model served by TF Serving",
                              description="Call a tfvae model served by TF Serving.")
    sub = p.add_subparsers(dest="client_command", required=True, metavar="SIGNATURE")

    q = sub.add_parser("encode", parents=[common], help="print z_mean and z_stddev of images")
    q.add_argument("images", nargs="+", metavar="IMAGE",
                   help="PNG/PGM/JPEG/BMP (grey levels / 255) or .npy ([H, W], [N, H, W] or "
                        "[N, H, W, C])")
    q.set_defaults(func=encode)

    q = sub.add_parser("decode", parents=[common],
                       help="write the images decoded from latent vectors as a PNG grid")
    group = q.add_mutually_exclusive_group(required=True)
    group.add_argument("--z", action="append", metavar="Z1,Z2,...",
                       help="one latent vector, comma-separated (repeat for more)")
    group.add_argument("--z-file", help=".npy of latent vectors [B, D]")
    add_out_argument(q, ".png", default="decoded.png", what="image grid")
    q.set_defaults(func=decode)

    q = sub.add_parser("sample", parents=[common],
                       help="print z and write the images drawn for seeds as a PNG grid")
    q.add_argument("--seeds", type=int, nargs="+", required=True, help="one image per seed")
    q.add_argument("--out", help="PNG path for the images (optional)")
    q.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    q.set_defaults(func=sample)

    q = sub.add_parser("status", parents=[common], help="print the model's version states")
    q.set_defaults(func=status)
    q = sub.add_parser("metadata", parents=[common], help="print the served signatures")
    q.set_defaults(func=metadata)


def _call(args, request):
    """Run ``request(client)``; a refusal by the server is one line on stderr and status 1."""
    import sys

    from tfvae.export.client import Client, ServingError

    with Client(args.url, args.model_name, version=args.version, timeout=args.timeout) as client:
        try:
            return request(client)
        except ServingError as exc:
            what = {"UNAVAILABLE": "the server cannot be reached",
                    "DEADLINE_EXCEEDED": "the server did not answer in time"}.get(
                exc.code, "the server refused the request")
            print(f"tfvae client {args.client_command}: {what}: {exc}", file=sys.stderr)
            return None


def encode(args):
    import json

    batches = [(path, read_images(path)) for path in args.images]

    def request(client):
        for path, x in batches:
            out = client.encode(x, format=args.format)
            for i in range(len(x)):
                print(json.dumps({"image": path, "index": i,
                                  "z_mean": out["z_mean"][i].tolist(),
                                  "z_stddev": out["z_stddev"][i].tolist()}))
        return 0

    return _exit(_call(args, request))


def decode(args):
    import numpy as np

    from tfvae.data.files import read_npy
    from tfvae.errors import InputError
    from tfvae.images import save_grid
    from tfvae.storage import check_output

    out = check_output(args.out, ".png", overwrite=args.overwrite)
    if args.z_file:
        z = read_npy(Path(args.z_file), "--z-file", "a readable .npy file of latents [B, D]")
    else:
        try:
            z = np.array([[float(v) for v in text.split(",")] for text in args.z], np.float32)
        except ValueError:
            raise InputError("--z", "comma-separated numbers of one length", repr(args.z)) from None
    x = _call(args, lambda client: client.decode(z, format=args.format))
    if x is None:
        return 1
    save_grid(x, out, overwrite=args.overwrite)
    print(f"tfvae client decode: {len(x)} images written to {out}")
    return 0


def sample(args):
    import json

    from tfvae.images import save_grid
    from tfvae.storage import check_output

    path = args.out and check_output(args.out, ".png", overwrite=args.overwrite)
    out = _call(args, lambda client: client.sample(args.seeds, format=args.format))
    if out is None:
        return 1
    for seed, z in zip(args.seeds, out["z"]):
        print(json.dumps({"seed": seed, "z": z.tolist()}))
    if path:
        save_grid(out["x_mean"], path, overwrite=args.overwrite)
        print(f"tfvae client sample: {len(args.seeds)} images written to {path}")
    return 0


def status(args):
    import json

    return _exit(_call(args, lambda client: print(json.dumps(client.status(), indent=2)) or 0))


def metadata(args):
    import json

    return _exit(_call(args, lambda client: print(json.dumps(client.metadata(), indent=2)) or 0))


def _exit(result):
    return 1 if result is None else result


def read_images(path):
    """Images [N, H, W, C] float32 from a grey image file or a .npy array."""
    import numpy as np

    from tfvae.data.files import read_npy
    from tfvae.errors import InputError

    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        x = read_npy(Path(path), "IMAGE", "a readable .npy file of images")
        if x.ndim == 2:
            x = x[np.newaxis]
        if x.ndim == 3:
            x = x[..., np.newaxis]
        if x.ndim != 4:
            raise InputError("IMAGE", ".npy images [H, W], [N, H, W] or [N, H, W, C]",
                             f"{path!r} of shape {x.shape}")
        if np.issubdtype(x.dtype, np.integer) and x.max(initial=0) > 1:
            return (x / 255).astype(np.float32)  # grey levels 0..255, as tfvae.data reads them
        return x.astype(np.float32)
    if suffix in _IMAGE_SUFFIXES and Path(path).is_file():
        from PIL import Image

        from tfvae.data.files import open_regular

        try:
            with open_regular(Path(path)) as f, Image.open(f) as image:
                pixels = np.asarray(image.convert("L"), dtype=np.float32) / 255
        except (OSError, SyntaxError, ValueError) as exc:  # Pillow's words for a bad image
            raise InputError("IMAGE", "a readable image file", f"{path!r} ({exc})") from None
        return pixels[np.newaxis, ..., np.newaxis]
    raise InputError("IMAGE", f"an existing {'/'.join(_IMAGE_SUFFIXES)} or .npy file",
                     repr(path))
