"""``tfds:<name>``: a TensorFlow Datasets dataset's splits (``tensorflow_datasets`` is an optional
dependency), held in memory or streamed from its prepared files."""

import hashlib

import numpy as np
import tensorflow as tf

from tfvae.data.sources.splits import from_arrays, labels, suited_stream
from tfvae.data.streams import Stream, choose_storage, permuted_windows, window_size
from tfvae.errors import InputError, arg


def tfds_dataset(tfds_name, data_path=None, storage="auto", train_split="train",
                 test_split="test", image_size=None):
    """The ``image`` (and ``label``) features of TFDS dataset ``tfds_name``, ``train_split`` and
    ``test_split`` any TFDS split expressions (``train[:90%]``); ``data_path`` is a TFDS
    ``data_dir`` where it was prepared (nothing is downloaded then). Streamed (read from the
    prepared files as training goes, no split concatenated) where ``storage`` says so or, "auto",
    where it is large."""
    argument = arg("name", f"tfds:{tfds_name}")
    tfds = _tfds(argument)
    try:
        builder = tfds.builder(tfds_name, data_dir=data_path)
    except tfds.core.registered.DatasetNotFoundError as exc:
        raise InputError(argument, "the name of a TFDS dataset (tfds.list_builders() lists "
                         "them)", f"{tfds_name!r}, which TFDS does not know") from exc
    with _one_line(argument):
        if data_path is None:
            builder.download_and_prepare()
        try:
            counts = [builder.info.splits[split].num_examples
                      for split in (train_split, test_split)]
        except KeyError:  # no split information here (TFDS's mock data): read in memory
            counts = None
    features = builder.info.features
    if "image" not in features:
        raise InputError(argument, "an 'image' feature", f"features {sorted(features)}")
    shape = list(features["image"].shape)
    if image_size is not None:
        shape[:2] = image_size
    if None in shape:
        raise InputError("image_size", f"H W for tfds:{tfds_name}, whose images vary in size",
                         "none")
    stream, why = choose_storage(storage, f"tfds:{tfds_name}", counts and sum(counts), shape,
                                 streamable=counts is not None)
    labelled = "label" in features
    if stream:
        train, test = (TfdsSplit(builder, split, count, shape, labelled, image_size is not None)
                       for split, count in zip((train_split, test_split), counts))
        return suited_stream(train, test, why)
    with _one_line(argument):
        train, test = (_arrays(builder.as_dataset(split=split, shuffle_files=False))
                       for split in (train_split, test_split))
    splits = from_arrays({"train": train["image"], "test": test["image"]}, "train", "test",
                         argument)
    splits.y_train, splits.y_test = labels(train.get("label")), labels(test.get("label"))
    splits.storage = why
    return splits


def _tfds(argument):
    try:
        import tensorflow_datasets as tfds  # optional: only tfds:<name> needs it
    except ImportError as exc:
        raise InputError(argument, "tensorflow-datasets installed (pip install "
                         "tensorflow-datasets, or tfvae[tfds])", f"ImportError: {exc}") from exc
    return tfds


class _one_line:
    """TFDS raises many types (download, missing split, bad data_dir), in messages of many
    lines: one InputError with the first."""

    def __init__(self, argument):
        self.argument = argument

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, InputError) or not isinstance(exc, Exception):
            return False
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(
            self.argument,
            f"a TFDS dataset with the splits asked for, prepared in {arg('data_path', 'DIR')} "
            "(a TFDS data_dir) or downloadable from here; without a network, give a local file "
            f"instead ({arg('name', 'FILE.npz')} with x_train and x_test)",
            f"{type(exc).__name__}: {first_line[:300]}",
        ) from exc


def _arrays(split):
    """A TFDS split as a dict of numpy arrays.

    Batched by a bounded size and concatenated: ``batch_size=-1`` aborts the process under
    TensorFlow 2.21 (std::length_error from a reserve of the maximal batch).
    """
    batches = list(split.batch(4096).as_numpy_iterator())
    return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}


class TfdsSplit(Stream):
    """One split expression of a prepared TFDS dataset, read from its files in their order
    (TFDS writes examples shuffled); an epoch permutes windows of them by ``(seed, epoch)``, a
    worker reads its files (TFDS's own sharding by input context)."""

    def __init__(self, builder, split, count, example_shape, labelled, resize, limit=None):
        super().__init__(f"tfds:{builder.name} {split}", example_shape)
        self.builder, self.split, self.count, self.resize = builder, split, count, resize
        self.limit, self.labelled = limit, labelled
        self.labels = self._read_labels() if labelled else None

    def __len__(self):
        return self.count if self.limit is None else min(self.count, self.limit)

    def first(self, n):
        out = object.__new__(TfdsSplit)
        out.__dict__.update(self.__dict__)
        out.limit, out.labels = n, None if self.labels is None else self.labels[:n]
        return out

    def _read_labels(self):
        import tensorflow_datasets as tfds

        ds = self.builder.as_dataset(split=self.split, shuffle_files=False,
                                     decoders={"image": tfds.decode.SkipDecoding()})
        return np.concatenate([b["label"] for b in ds.batch(8192).as_numpy_iterator()]
                              or [np.empty(0, np.int64)]).astype(np.int64)

    def _examples(self, shard=None):
        import tensorflow_datasets as tfds

        context = None if shard is None else tf.distribute.InputContext(
            num_input_pipelines=shard[1], input_pipeline_id=shard[0])
        ds = self.builder.as_dataset(split=self.split, shuffle_files=False,
                                     read_config=tfds.ReadConfig(input_context=context))
        h, w, _ = self.example_shape

        def pair(example):
            image = example["image"]
            if self.resize:
                image = tf.cast(tf.round(tf.clip_by_value(
                    tf.image.resize(image, [h, w], antialias=True), 0.0, 255.0)), tf.uint8)
            label = example["label"] if self.labelled else tf.constant(-1, tf.int64)
            return tf.ensure_shape(image, self.example_shape), tf.cast(label, tf.int64)

        ds = ds.map(pair, num_parallel_calls=tf.data.AUTOTUNE)
        return ds if self.limit is None else ds.take(self.limit)

    def ordered_batches(self, batch_size):
        return self._examples().batch(batch_size)

    def epoch_batches(self, seed, epoch, batch_size, drop_remainder=False, shard=None):
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
        return permuted_windows(self._examples(shard), key, window_size(self)).batch(
            batch_size, drop_remainder=drop_remainder)

    def mean_example(self, at_most=2048):
        return self.head(at_most).mean(axis=0)

    @property
    def parts(self):
        return self.builder.info.splits[self.split].num_shards

    def fingerprint(self):
        return hashlib.sha256(repr((self.builder.name, str(self.builder.version), self.split,
                                    len(self))).encode()).hexdigest()
