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

    q = sub.add_parser("score", parents=[common],
                       help="print (and write as CSV) the anomaly score of each example",
                       description="Send the examples of each INPUT to the score signature and "
                                   "print one JSON line per example: its score (minus the ELBO, "
                                   "higher: more unusual) and, when the export has the run's "
                                   "threshold, anomaly (1 above it).")
    q.add_argument("inputs", nargs="+", metavar="INPUT",
                   help=".npy of examples ([N, *E] or one [*E]), .npz with x (and y, a "
                        "conditional model's labels), a PNG/PGM/JPEG/BMP image, or for a model "
                        "trained on a table, a table (.csv, .tsv, .parquet) with its columns")
    q.add_argument("--seed", type=int, default=0,
                   help="every example's seed: the same seed gives the same score (default: 0)")
    q.add_argument("--batch-size", type=int, default=256,
                   help="examples per request (default: 256, the max_batch_size of "
                        "serving/batching.config)")
    add_out_argument(q, ".csv", what="scores CSV (input, row, score[, anomaly])", required=False)
    q.set_defaults(func=score)

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


def score(args):
    import csv
    import io
    import json

    from tfvae.checks import MAX_INT64, check_int
    from tfvae.errors import InputError
    from tfvae.storage import check_output, write_text

    out = args.out and check_output(args.out, ".csv", overwrite=args.overwrite)
    batch_size = check_int("--batch-size", args.batch_size)
    check_int("--seed", args.seed, minimum=-MAX_INT64 - 1, maximum=MAX_INT64)

    def request(client):
        from tfvae.data.tables import TABLE_SUFFIXES

        signatures = client.signatures()
        if "score" not in signatures:
            raise InputError("--model-name", "a model served with a score signature (a tfvae "
                             "export of a model with a bound)",
                             f"{args.model_name!r}, whose signatures are {sorted(signatures)}")
        shape = signatures["score"]["inputs"]["x"]["shape"][1:]
        conditional = "label" in signatures["score"]["inputs"]
        rows = []
        for path in args.inputs:
            ids = None
            if Path(path).suffix.lower() in TABLE_SUFFIXES:
                columns, ids = read_table_columns(path, signatures.get("score_rows"))
                count = len(next(iter(columns.values())))
            else:
                x, y = read_examples(path, shape, conditional)
                count = len(x)
            for start in range(0, count, batch_size):
                part = slice(start, start + batch_size)
                if ids is None:
                    got = client.score(x[part], args.seed, None if y is None else y[part],
                                       format=args.format)
                else:
                    got = client.score_rows({name: values[part] for name, values
                                             in columns.items()}, args.seed,
                                            format=args.format)
                for i, value in enumerate(got["score"]):
                    row = {"input": path, "index": start + i, "score": float(value)}
                    if ids is not None and len(ids):
                        row["id"] = str(ids[start + i])
                    if "anomaly" in got:
                        row["anomaly"] = int(got["anomaly"][i])
                    rows.append(row)
                    print(json.dumps(row))
        return rows

    rows = _call(args, request)
    if rows is None:
        return 1
    if out:
        text = io.StringIO()
        table = csv.writer(text, lineterminator="\n")
        ids = any("id" in row for row in rows)
        columns = ["input", "row", *(["id"] if ids else []), "score",
                   *(["anomaly"] if rows and "anomaly" in rows[0] else [])]
        table.writerow(columns)
        table.writerows([row["input"], row["index"], *([row.get("id", "")] if ids else []),
                         repr(row["score"]), *([row["anomaly"]] if "anomaly" in columns else [])]
                        for row in rows)
        write_text(out, text.getvalue(), overwrite=args.overwrite)
        flagged = (f"; {sum(row['anomaly'] for row in rows)} above the threshold"
                   if "anomaly" in columns else "")
        print(f"tfvae client score: {len(rows)} scores written to {out}{flagged}")
    return 0


def read_table_columns(path, signature):
    """The values of the served columns (input name -> array [N]) in the table file INPUT
    ``path``, matched by name, and its "id" column (empty when it has none); ``signature``
    is the served ``score_rows`` signature's metadata (None: the model takes no table)."""
    import numpy as np

    from tfvae.data.tables import ID_COLUMN, column_names, read_table
    from tfvae.errors import InputError
    from tfvae.export.rows import input_names

    if signature is None or "label" in signature["inputs"]:
        raise InputError("INPUT", "an .npy or .npz of examples (the served model takes no "
                         "table rows)" if signature is None else "an .npz of examples with "
                         "labels y (a conditional model)", repr(path))
    served = {name: info for name, info in signature["inputs"].items() if name != "seed"}
    header = column_names(path, "INPUT")
    by_input = {input_names([{"name": name}])[0]: name for name in header}
    missing = [name for name in served if name not in by_input]
    if missing:
        raise InputError("INPUT", f"a table with the served model's columns "
                         f"({', '.join(map(repr, served))})",
                         f"{path!r} without {', '.join(map(repr, missing))}")
    text = {name: served[name]["dtype"] == "DT_STRING" for name in served}
    kept = [by_input[name] for name in served]
    table = read_table(path, argument="INPUT", column_types={
        by_input[name]: "categorical" if text[name] else "real" for name in served},
        exclude=[name for name in header if name not in kept and name != ID_COLUMN])
    index = {column.name: j for j, column in enumerate(table.columns)}  # the file's order
    columns = {}
    for name in served:
        j = index[by_input[name]]
        values = table.values[:, j]
        categories = table.columns[j].categories
        columns[name] = (np.asarray(categories, object)[values.astype(np.int64)] if text[name]
                         else values.astype(np.float32))
    return columns, np.array([]) if table.ids is None else table.ids


def read_examples(path, shape, conditional=False):
    """The examples of INPUT ``path`` as float32 [N, *shape] (``shape``: the served ``x``'s
    trailing shape), with a conditional model's int64 labels [N] (else None).

    Images (an image file, or an .npy/.npz of images) are read as :func:`read_images` reads
    them, grey levels 0..255 scaled to [0, 1]; vectors (``shape`` [D]) are taken as they are.
    """
    import numpy as np

    from tfvae.data.files import read_npy, read_npz
    from tfvae.errors import InputError

    suffix = Path(path).suffix.lower()
    y = None
    if suffix == ".npz":
        arrays = read_npz(Path(path), "INPUT", "a readable .npz file with x")
        if "x" not in arrays:
            raise InputError("INPUT", "an .npz with x (the examples)",
                             f"{path!r} with {sorted(arrays)}")
        x = arrays["x"]
        if conditional:
            if "y" not in arrays:
                raise InputError("INPUT", "an .npz with y, the labels of a conditional model",
                                 f"{path!r} with {sorted(arrays)}")
            y = np.asarray(arrays["y"]).reshape(-1).astype(np.int64)
    elif conditional:
        raise InputError("INPUT", "an .npz with x and y (a conditional model needs labels)",
                         repr(path))
    elif suffix == ".npy":
        x = read_npy(Path(path), "INPUT", "a readable .npy file of examples")
    elif len(shape) == 3:
        return read_images(path), None
    else:
        raise InputError("INPUT", f"an .npy or .npz of vectors of {shape[0]} values",
                         repr(path))
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise InputError("INPUT", "an array of real numbers", f"{path!r} of dtype {x.dtype}")
    size = int(np.prod(shape))
    # [N, *shape] or N examples of its values flat ([N, 784]), or one example alone.
    if x.size == 0 or (x.size != size and (x.ndim < 2 or int(np.prod(x.shape[1:])) != size)):
        raise InputError("INPUT", f"examples of shape {tuple(shape)} (the served model's)",
                         f"{path!r} of shape {x.shape}")
    if len(shape) == 3 and np.issubdtype(x.dtype, np.integer) and x.max(initial=0) > 1:
        x = x / 255  # grey levels 0..255, as tfvae.data reads them
    x = x.reshape(-1, *shape).astype(np.float32)
    if y is not None and len(y) != len(x):
        raise InputError("INPUT", "one label y per example of x",
                         f"{path!r} with {len(y)} labels for {len(x)} examples")
    return x, y


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
