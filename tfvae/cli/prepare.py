"""``tfvae prepare``: write a dataset once into shards that training streams
(``tfvae.data.prepared``)."""

import argparse

from tfvae import options
from tfvae.cli.flags import flag_of

# The data settings a source is read with, as tfvae train takes them.
_READ_SETTINGS = ("image_size", "data_path", "label_column", "exclude_columns", "column_types",
                  "allow_missing")


def register(subparsers):
    from tfvae.cli.train import setting_argument

    p = subparsers.add_parser(
        "prepare", help="write a dataset into TFRecord shards that training streams",
        description="Read SOURCE once (a registered dataset, tfds:NAME, a file or a folder of "
                    "images, with the data settings tfvae train takes) and write it to --out as "
                    "TFRecord shards with an index.json; train with --dataset OUT. Interrupted, "
                    "the same command continues where it stopped; OUT appears only complete.")
    p.add_argument("source", metavar="SOURCE", help="what tfvae train takes as --dataset")
    p.add_argument("--out", required=True, help="the prepared dataset's directory (new)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it is a prepared dataset")
    flag = flag_of("prepare")
    for name in _READ_SETTINGS:
        p.add_argument(flag(name), dest=name, default=argparse.SUPPRESS,
                       **setting_argument(options.SETTINGS[name]))
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args):
    from tfvae.data.prepared import prepare

    settings = {name: getattr(args, name) for name in _READ_SETTINGS if hasattr(args, name)}
    index = prepare(args.source, args.out, overwrite=args.overwrite, verbose=not args.quiet,
                    **settings)
    counts = {split: index["splits"][split]["count"] for split in ("train", "test")}
    shards = sum(len(index["splits"][split]["shards"]) for split in ("train", "test"))
    print(f"tfvae prepare: {counts['train']} train / {counts['test']} test examples of shape "
          f"{tuple(index['example_shape'])} ({index['dtype']}) in {shards} shards written to "
          f"{args.out}; train with --dataset {args.out}")
    return 0
