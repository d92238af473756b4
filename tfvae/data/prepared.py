"""tfvae's prepared format: a dataset written once into TFRecord shards that training streams.

A prepared dataset is a directory::

    index.json                        what it holds (below); written last
    train-00000-of-00016.tfrecord     shards of tf.train.Example records: "x", the example's
    ...                               raw bytes (uint8 levels 0..255, or float32), "y", its label
    test-00000-of-00002.tfrecord      (-1 without labels)
    labels-train.npy, labels-test.npy the labels again, for what needs them all at once

``index.json`` gives the format and version, the source it was read from, the example shape and
dtype, the likelihood and binarizations that suit the data, a table's columns, and per split the
count and each shard's examples, bytes and sha256 (checked when the dataset is opened: a missing,
short or altered shard is refused by name).

TFRecord rather than ArrayRecord: ``tf.data`` reads it natively (no extra dependency, any TF
tooling reads the shards), its records carry CRCs, and training reads shards whole, in an order
drawn per epoch, through a shuffle buffer: the random access ArrayRecord adds is not needed.

The training split is written in an order shuffled once (seed 0) where the source allows it,
so a shuffle buffer mixes well; the test split keeps the source's order. Writing goes to
``DIR.partial`` and is renamed to ``DIR`` when complete: a dataset is never half-visible, and a
killed ``prepare`` continues where it stopped when run again with the same arguments.
"""

import dataclasses
import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from tfvae import storage
from tfvae.data.files import open_regular
import tensorflow as tf

from tfvae.data.streams import Stream, is_stream, permuted_windows, window_size
from tfvae.errors import InputError, arg

INDEX = "index.json"
FORMAT = "tfvae-prepared"
VERSION = 1
SHARD_BYTES = 64 << 20  # about this many bytes of examples per shard
_MIN_SHARDS = 16  # the training split's shards are a multiple of this many (at most one per
# example), so that workers can share it by file in equal parts
_PROGRESS = "progress.json"
_CYCLE = 4  # shards read at once, interleaved


def is_prepared(path):
    return (Path(path) / INDEX).is_file()


def prepare(source, out, *, overwrite=False, verbose=True, **load_arguments):
    """Write the dataset ``source`` (any ``load_dataset`` name: a registered source, a path,
    ``tfds:NAME``) to ``out`` in the prepared format, with ``load_arguments`` (``image_size``,
    ``data_path``, a table's options...) as ``load_dataset`` takes them. Returns ``out``'s
    index (a dict). Resumable: a killed run's ``out.partial`` is continued."""
    from tfvae.data.sources.dataset import read_splits

    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError("out", f"a directory that does not exist yet (or "
                         f"{arg('overwrite', True)} to replace it)", repr(str(out)))
    if out.exists() and not is_prepared(out):
        raise InputError("out", "a prepared dataset to overwrite (one with an index.json)",
                         f"{str(out)!r}, which is something else; it was kept")
    partial = out.with_name(out.name + ".partial")
    storage.check_writable_dir(out.parent if out.parent != Path("") else Path("."), "out")
    # Streamed where the source is large: nothing that size is held whole.
    read = read_splits(str(source), **{"storage": "auto", **load_arguments})
    splits = {"train": _shuffled(read.x_train, read.y_train),
              "test": (_in_order(read.x_test), read.y_test)}
    dtype = _stored_dtype(read)
    plan = {"source": str(source),
            "arguments": {k: str(v) if isinstance(v, os.PathLike) else v
                          for k, v in sorted(load_arguments.items()) if v not in (None, (), [])},
            "example_shape": list(np.shape(read.x_train)[1:]), "dtype": np.dtype(dtype).name,
            "counts": {name: len(x) for name, (x, _) in splits.items()}}
    with storage.exclusive_writer(partial, argument="out", what="prepared dataset"):
        progress = _progress(partial, plan)
        index = {"format": FORMAT, "version": VERSION, "source": str(source),
                 "example_shape": plan["example_shape"], "dtype": plan["dtype"],
                 "likelihood": read.likelihood, "default_binarize": read.default_binarize,
                 "allowed_binarize": list(read.allowed_binarize),
                 "already_binary": read.already_binary,
                 "columns": None if read.columns is None
                 else [dataclasses.asdict(c) for c in read.columns],
                 "labels": read.y_train is not None, "splits": {}}
        total = sum(plan["counts"].values())
        bar = _progress_bar(total, f"tfvae prepare: {source} -> {out}", verbose)
        for name, (x, y) in splits.items():
            index["splits"][name] = _write_split(partial, name, x, y, dtype, progress, bar)
        storage.write_json(partial / INDEX, index)
        (partial / _PROGRESS).unlink()
        if out.exists():  # overwrite: the old one goes only once the new one is complete
            old = out.with_name(f".{out.name}.old{os.getpid()}")
            os.rename(out, old)
            shutil.rmtree(old)
    storage.rename_no_replace(partial, out)
    return index


def _shuffled(x, y):
    """The training split in an order shuffled once (seed 0), where it can be read by number
    (a sequential stream keeps its own)."""
    if is_stream(x) and not hasattr(x, "view"):
        return _in_order(x), y
    order = np.random.default_rng(0).permutation(len(x))
    return (x.view(order) if is_stream(x) else _Taken(x, order)), None if y is None else y[order]


def _in_order(x):
    """``x``, a sequential stream read block after block."""
    return _InOrder(x) if is_stream(x) and not hasattr(x, "view") else x


class _InOrder:
    """A sequential stream's examples as float32, taken block after block in its order."""

    def __init__(self, stream):
        self.stream, self.shape, self.pending = stream, stream.shape, None
        self.batches = stream.ordered_batches(256).as_numpy_iterator()

    def __len__(self):
        return len(self.stream)

    def block(self, start, stop):
        """The next ``stop - start`` examples (blocks are asked for in order)."""
        parts = [] if self.pending is None else [self.pending]
        while sum(map(len, parts)) < stop - start:
            parts.append(self.stream.as_float(next(self.batches)[0]))
        joined = np.concatenate(parts)
        self.pending = joined[stop - start:]
        return joined[:stop - start]


@dataclasses.dataclass
class _Taken:
    """``array[order]``, gathered a block at a time."""
    array: np.ndarray
    order: np.ndarray

    def __len__(self):
        return len(self.order)

    @property
    def shape(self):
        return (len(self.order), *self.array.shape[1:])

    def block(self, start, stop):
        return self.array[np.sort(self.order[start:stop])][
            np.argsort(np.argsort(self.order[start:stop]))]


def _stored_dtype(splits):
    """uint8 where every value is a level k/255 (images read from 8-bit files), else float32."""
    if is_stream(splits.x_train):
        return splits.x_train.dtype  # uint8 for levels k/255 or 0 and 1
    from tfvae.data.pipelines import grey_levels

    on_levels = all(grey_levels(x) is not None for x in (splits.x_train, splits.x_test))
    return np.uint8 if on_levels else np.float32


def _shard_plan(count, example_bytes, split):
    shards = max(1, math.ceil(count * example_bytes / SHARD_BYTES))
    if split == "train":  # a multiple of 16 shards: equal parts for 2, 4, 8 or 16 workers
        shards = min(count, _MIN_SHARDS * math.ceil(shards / _MIN_SHARDS))
    bounds = np.linspace(0, count, shards + 1).astype(int)
    return [(f"{split}-{i:05d}-of-{shards:05d}.tfrecord", int(bounds[i]), int(bounds[i + 1]))
            for i in range(shards)]


def _examples(x, start, stop, dtype):
    """The examples ``start:stop`` of an array, an indexed stream or an ordered one, as
    ``dtype``."""
    if hasattr(x, "block"):
        block = x.block(start, stop)
    else:
        block = np.asarray(x.view(slice(start, stop)) if is_stream(x) else x[start:stop])
    if dtype == np.uint8:
        return np.rint(np.asarray(block, np.float32) * 255).astype(np.uint8)
    return np.asarray(block, np.float32)


def _write_split(directory, split, x, y, dtype, progress, bar):
    import tensorflow as tf

    example_bytes = math.prod(x.shape[1:]) * np.dtype(dtype).itemsize
    plan = _shard_plan(len(x), example_bytes, split)
    shards = []
    for name, start, stop in plan:
        path = directory / name
        done = progress["shards"].get(name)
        if done and path.is_file() and path.stat().st_size == done["bytes"]:
            shards.append(done)
            bar.add(stop - start)
            if isinstance(x, _InOrder):  # read past what the shard holds
                x.block(start, stop)
            continue
        examples = _examples(x, start, stop, dtype)
        labels = (np.full(stop - start, -1, np.int64) if y is None
                  else np.asarray(y[start:stop], np.int64))
        digest = hashlib.sha256()

        def write(tmp):
            with tf.io.TFRecordWriter(tmp) as writer:
                for example, label in zip(examples, labels):
                    writer.write(tf.train.Example(features=tf.train.Features(feature={
                        "x": tf.train.Feature(bytes_list=tf.train.BytesList(
                            value=[np.ascontiguousarray(example, dtype).tobytes()])),
                        "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                    })).SerializeToString())
            with open(tmp, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)

        storage.write_atomic(path, write)
        record = {"file": name, "count": stop - start, "bytes": path.stat().st_size,
                  "sha256": digest.hexdigest()}
        shards.append(record)
        progress["shards"][name] = record
        storage.write_json(directory / _PROGRESS, progress)
        bar.add(stop - start)
    labels_file = None
    if y is not None:
        labels_file = f"labels-{split}.npy"
        storage.write_atomic(directory / labels_file,
                             lambda tmp: np.save(tmp, np.asarray(y, np.int64)))
    return {"count": len(x), "shards": shards, "labels": labels_file}


def _progress(partial, plan):
    """What a killed ``prepare`` of the same plan wrote, or a fresh start."""
    path = partial / _PROGRESS
    if path.is_file():
        try:
            progress = storage.read_json(path)
        except (OSError, ValueError):
            progress = None
        if progress and progress.get("plan") == json.loads(json.dumps(plan)):
            return progress
    for child in partial.iterdir():  # another plan's shards: start over
        if child.name != storage.LOCK_FILE:
            child.unlink() if child.is_file() else shutil.rmtree(child)
    progress = {"plan": plan, "shards": {}}
    storage.write_json(path, progress)
    return progress


def _progress_bar(total, title, verbose):
    """Keras's progress bar on stdout, after ``title``, or a bar that shows nothing."""
    import keras

    if verbose:
        print(title, flush=True)
    return keras.utils.Progbar(total, verbose=1 if verbose else 0, unit_name="example")


# ----------------------------------------------------------------------------------- reading


class RecordShards(Stream):
    """A split of a prepared dataset: TFRecord shards of ``tf.train.Example`` records holding
    ``x`` (an example's raw bytes) and ``y`` (its label, -1 for none), ``counts[i]`` in shard
    ``i``; ``limit`` keeps the first examples."""

    def __init__(self, where, files, counts, example_shape, dtype, labels=None, checksum="",
                 limit=None):
        super().__init__(where, example_shape, labels)
        self.files, self.counts, self.dtype = list(files), list(counts), np.dtype(dtype).type
        self.checksum, self.limit = checksum, limit

    def __len__(self):
        total = sum(self.counts)
        return total if self.limit is None else min(total, self.limit)

    def first(self, n):
        out = object.__new__(RecordShards)
        out.__dict__.update(self.__dict__)
        out.limit, out.labels = n, None if self.labels is None else self.labels[:n]
        return out

    def _parse(self, records):
        features = tf.io.parse_example(records, {"x": tf.io.FixedLenFeature([], tf.string),
                                                 "y": tf.io.FixedLenFeature([], tf.int64)})
        x = tf.io.decode_raw(features["x"], tf.as_dtype(self.dtype))
        return tf.reshape(x, (-1, *self.example_shape)), features["y"]

    def ordered_batches(self, batch_size):
        ds = tf.data.TFRecordDataset(self.files, num_parallel_reads=None)
        if self.limit is not None:
            ds = ds.take(self.limit)
        return ds.batch(batch_size).map(self._parse, num_parallel_calls=tf.data.AUTOTUNE)

    def epoch_batches(self, seed, epoch, batch_size, drop_remainder=False, shard=None):
        if self.limit is not None:  # a few examples (a measurement's): in order, each epoch
            return self.ordered_batches(batch_size)
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
        files = tf.constant(self.files)
        files = tf.gather(files, tf.argsort(tf.random.stateless_uniform([len(self.files)],
                                                                        seed=key)))
        ds = tf.data.Dataset.from_tensor_slices(files)
        if shard is not None:
            ds = ds.shard(shard[1], shard[0])
        cycle = min(_CYCLE, len(self.files))
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=cycle, block_length=1,
                           num_parallel_calls=cycle, deterministic=True)
        ds = permuted_windows(ds, key, window_size(self))
        return ds.batch(batch_size, drop_remainder=drop_remainder).map(
            self._parse, num_parallel_calls=tf.data.AUTOTUNE)

    def mean_example(self, at_most=2048):
        return self.head(at_most).mean(axis=0)  # shards are written in shuffled order

    def fingerprint(self):
        return hashlib.sha256(f"{self.checksum}:{len(self)}".encode()).hexdigest()

    @property
    def parts(self):
        return len(self.files)


def read_prepared(path, argument="name"):
    """The index of the prepared dataset ``path`` and its splits as :class:`RecordShards`, after
    checking every shard is there, whole and unaltered (sha256), naming the one that is not."""
    path = Path(path)
    where = arg(argument, str(path))
    try:
        index = storage.read_json(path / INDEX)
    except (OSError, ValueError) as exc:
        raise InputError(where, f"a prepared dataset with a readable {INDEX}",
                         f"{type(exc).__name__}: {exc}") from exc
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise InputError(where, f"a prepared dataset of format {FORMAT} version {VERSION}",
                         f"format {index.get('format')!r} version {index.get('version')!r}")
    splits = {}
    for split in ("train", "test"):
        entry = index["splits"][split]
        for shard in entry["shards"]:
            _check_shard(path / shard["file"], shard, where)
        labels = None
        if entry.get("labels"):
            try:
                labels = np.load(path / entry["labels"], allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise InputError(where, "its labels file", f"{entry['labels']} unreadable "
                                 f"({exc})") from exc
            if labels.shape != (entry["count"],):
                raise InputError(where, f"{entry['count']} labels in {entry['labels']}",
                                 f"shape {labels.shape}")
        checksum = hashlib.sha256("".join(s["sha256"] for s in entry["shards"]).encode())
        splits[split] = RecordShards(
            str(path), [str(path / s["file"]) for s in entry["shards"]],
            [s["count"] for s in entry["shards"]], index["example_shape"], index["dtype"],
            labels, checksum.hexdigest())
    return index, splits


def _check_shard(file, shard, where):
    if not file.is_file():
        raise InputError(where, "every shard its index.json lists",
                         f"{file.name} missing (prepare the dataset again)")
    if file.stat().st_size != shard["bytes"]:
        raise InputError(where, f"{file.name} of {shard['bytes']:,} bytes",
                         f"{file.stat().st_size:,} bytes (truncated or replaced: prepare the "
                         "dataset again)")
    digest = hashlib.sha256()
    with open_regular(file) as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    if digest.hexdigest() != shard["sha256"]:
        raise InputError(where, f"{file.name} as it was written (sha256 "
                         f"{shard['sha256'][:12]}...)", f"sha256 {digest.hexdigest()[:12]}... "
                         "(altered or corrupt: prepare the dataset again)")
