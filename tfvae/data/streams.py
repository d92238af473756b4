"""Splits that stay on disk and are read as training uses them: the streamed members of the data
sources, and the choice between them and arrays in memory.

A :class:`Stream` is one split: its examples' count and shape, their labels (small: in memory)
and ``tf.data`` pipelines of its batches, stored pixels kept uint8 until the last step casts
them. Two kinds:

- indexed (:class:`ImageFiles`, a folder's images decoded in parallel by ``tf.data``;
  :class:`MemoryMappedArray`, an ``.npy`` file): any example can be read by its number, so epoch
  ``e`` visits them in the permutation the in-memory pipeline uses for ``(seed, e)``, and a
  streamed run sees the batches an in-memory one would;
- sequential (the prepared format's shards, :mod:`tfvae.data.prepared`; a TFDS dataset's
  split, :mod:`tfvae.data.sources.tfds`): epoch
  ``e`` reads the shards in an order drawn from ``(seed, e)``, interleaved, and permutes each
  window of 64 MB of records by ``(seed, e)`` and the window's number.

Either way the order of an epoch depends on the seed and its number alone, so a resumed run
repeats an uninterrupted one's batches. ``shard=(index, count)`` gives a worker its part: the
files ``index::count`` of a sequential stream, the examples ``index::count`` of an indexed one.
"""

import contextlib
import contextvars
import hashlib
import math
import os

import numpy as np
import tensorflow as tf

from tfvae.errors import InputError, arg

# ``storage="auto"`` holds a split in memory up to this many bytes of float32 examples (what
# ``load_dataset`` arrays take), and streams larger ones.
STREAM_ABOVE_BYTES = 10 ** 9
# A sequential stream is shuffled in windows of this many bytes of examples (at least 64).
_SHUFFLE_BYTES = 64 << 20


# What commands that read a few examples ask for: a stream where the source can stream.
WHERE_POSSIBLE = "stream where possible"


def choose_storage(storage, name, count, example_shape, *, streamable=True, unit="examples"):
    """``(stream, why)``: whether a source of ``count`` examples of ``example_shape`` (None:
    not known before it is read) streams under ``storage`` ("auto", "memory", "stream" or
    :data:`WHERE_POSSIBLE`), and the reason, as ``tfvae train`` says it first (told to the
    listener of :func:`announcing`); ``unit`` is what ``count`` counts."""
    if storage == WHERE_POSSIBLE:
        storage = "stream" if streamable else "memory"
    if not streamable and storage == "stream":
        raise InputError("storage", "a source that can stream: an image folder, an .npy file, "
                         "tfds:NAME or a prepared dataset (tfvae prepare makes one of any "
                         "source)",
                         f"{name}, which is read whole")
    size = None if count is None else count * math.prod(example_shape) * 4
    held = "" if size is None else f"{count:,} {unit}, {_bytes(size)} as float32; "
    if storage == "memory":
        stream, why = False, f"held in memory ({held}asked for)"
    elif not streamable:
        stream, why = False, f"held in memory ({held}{name} is read whole)"
    elif storage == "stream":
        stream, why = True, f"streamed from disk ({held}asked for)"
    elif size is not None and size > STREAM_ABOVE_BYTES:
        stream, why = True, (f"streamed from disk ({held}more than the "
                             f"{_bytes(STREAM_ABOVE_BYTES)} above which tfvae streams)")
    else:
        stream, why = False, (f"held in memory ({held}under the {_bytes(STREAM_ABOVE_BYTES)} "
                              "above which tfvae streams)")
    listener = _listener.get()
    if listener is not None:
        listener(why)
    return stream, why


_listener = contextvars.ContextVar("storage_listener", default=None)


@contextlib.contextmanager
def announcing(say):
    """Within, every choice of storage is told to ``say(why)`` as it is made, before the data
    is read."""
    token = _listener.set(say)
    try:
        yield
    finally:
        _listener.reset(token)


def _bytes(n):
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000


class Stream:
    """One split on disk: ``len()`` examples of ``example_shape``, stored as ``dtype`` (uint8
    levels 0..255 for k/255, or float32), with int64 ``labels`` or None."""

    dtype = np.uint8
    # Stored uint8 k stands for k / levels: 255 for 8-bit levels, 1 for data already binary.
    levels = 255
    # Set on a test split binarized as it is read (binarize="dynamic"): the seed of its draws.
    binarize_seed = None

    def __init__(self, where, example_shape, labels=None):
        self.where, self.example_shape = where, tuple(int(d) for d in example_shape)
        self.labels = labels

    def __len__(self):
        raise NotImplementedError

    @property
    def shape(self):
        return (len(self), *self.example_shape)

    @property
    def nbytes(self):
        return len(self) * math.prod(self.example_shape) * np.dtype(self.dtype).itemsize

    def __getitem__(self, key):
        """The first ``n`` examples (``stream[:n]``), still on disk."""
        if not (isinstance(key, slice) and key.start in (None, 0) and key.step in (None, 1)):
            raise TypeError("a stream gives its first n examples only: stream[:n]")
        n = len(self) if key.stop is None else max(0, min(len(self), key.stop))
        return self if n == len(self) else self.first(n)

    def first(self, n):
        raise NotImplementedError

    @property
    def parts(self):
        """How many parts workers can share it in: files, or examples read by number."""
        return len(self)

    def ordered_batches(self, batch_size):
        """``(x, y)`` batches in the stream's order (``y`` -1 without labels), stored dtype."""
        raise NotImplementedError

    def epoch_batches(self, seed, epoch, batch_size, drop_remainder=False, shard=None):
        """One epoch's ``(x, y)`` batches in the order of ``(seed, epoch)``; ``seed`` an int,
        ``epoch`` an int64 scalar tensor."""
        raise NotImplementedError

    def fingerprint(self):
        """A digest that changes when the stream's data does (for a resumed run's check)."""
        raise NotImplementedError

    def __array__(self, dtype=None, copy=None):
        """Every example as float32 in [0, 1] (uint8 k as k/255), read in order."""
        out = np.empty(self.shape, np.float32)
        done = 0
        for x, _ in self.ordered_batches(1024).as_numpy_iterator():
            out[done:done + len(x)] = self.as_float(x)
            done += len(x)
        return out if dtype is None else out.astype(dtype)

    def as_float(self, stored):
        """Stored examples (numpy) as float32 in [0, 1]."""
        if stored.dtype == np.uint8:
            return stored.astype(np.float32) / np.float32(self.levels)
        return stored

    def cast(self, batch):
        """A batch of stored examples (a tensor) as the model's float32 in [0, 1]."""
        if batch.dtype == tf.uint8:
            return tf.cast(batch, tf.float32) / float(self.levels)
        return batch

    def head(self, n):
        """The first ``n`` examples as float32 (as ``np.asarray``)."""
        return np.asarray(self[:n])

    def mean_example(self, at_most=2048):
        """The mean example over up to ``at_most`` of them, spread over the split."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.where!r}, shape={self.shape})"


def epoch_order(seed, epoch, count):
    """The permutation of ``count`` examples for epoch ``epoch`` (a tensor) of ``seed``: the one
    the in-memory training stream uses."""
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.argsort(tf.random.stateless_uniform([count], seed=key))


class IndexedStream(Stream):
    """A stream whose examples are read by number: ``index`` (positions in the source) picks and
    orders the split's examples."""

    def __init__(self, where, example_shape, index, labels=None):
        super().__init__(where, example_shape, labels)
        self.index = np.asarray(index, np.int64)

    def __len__(self):
        return len(self.index)

    def view(self, positions):
        """The stream of the examples at ``positions`` of this one."""
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.index = self.index[positions]
        out.labels = None if self.labels is None else self.labels[positions]
        return out

    def first(self, n):
        return self.view(slice(0, n))

    def split_last(self):
        """(train, test): the last 10% (at least one example) held out, as for arrays."""
        cut = len(self) - max(1, len(self) // 10)
        return self.view(slice(0, cut)), self.view(slice(cut, None))

    def _read(self, positions, batch_size, drop_remainder):
        """Batches of the examples at ``positions`` (a dataset of int64 positions in this
        stream), stored dtype, with their labels."""
        raise NotImplementedError

    def _labels(self, positions):
        labels = tf.constant(self.labels if self.labels is not None
                             else np.full(len(self), -1, np.int64))
        return tf.gather(labels, positions)

    def ordered_batches(self, batch_size):
        return self._read(tf.data.Dataset.range(len(self)), batch_size, False)

    def epoch_batches(self, seed, epoch, batch_size, drop_remainder=False, shard=None):
        positions = epoch_order(seed, epoch, len(self))
        if shard is not None:
            positions = positions[shard[0]::shard[1]]
        return self._read(tf.data.Dataset.from_tensor_slices(tf.cast(positions, tf.int64)),
                          batch_size, drop_remainder)

    def mean_example(self, at_most=2048):
        spread = np.unique(np.linspace(0, len(self) - 1, min(at_most, len(self))).astype(int))
        return np.asarray(self.view(spread)).mean(axis=0)


class ImageFiles(IndexedStream):
    """A folder's image files, each decoded and resized to ``image_size`` as the in-memory
    folder reader does (Pillow, :func:`tfvae.data.image_folders.read_image_file`: the same
    pixels), in ``tf.data``'s parallel map."""

    def __init__(self, folder, names, sizes, example_shape, image_size=None, labels=None):
        super().__init__(str(folder), example_shape, np.arange(len(names)), labels)
        # numpy arrays: the files' names (bytes) and sizes, compact for a million files
        self.names, self.sizes, self.image_size = names, sizes, image_size
        self.folder = os.path.join(os.fsencode(folder), b"")

    def _read(self, positions, batch_size, drop_remainder):
        names = tf.constant(self.names[self.index])
        height, width = self.image_size or (0, 0)

        def decoded(i):
            path = tf.strings.join([self.folder, tf.gather(names, i)])
            image = tf.numpy_function(_decode_image, [path, height, width,
                                                      self.example_shape[-1]], tf.uint8,
                                      stateful=False)
            return tf.ensure_shape(image, self.example_shape), self._labels(i)

        return positions.map(decoded, num_parallel_calls=tf.data.AUTOTUNE).batch(
            batch_size, drop_remainder=drop_remainder)

    def fingerprint(self):
        digest = hashlib.sha256(repr((self.example_shape, self.image_size)).encode())
        for name, size in zip(self.names[self.index], self.sizes[self.index]):
            digest.update(name + f":{size};".encode())
        return digest.hexdigest()


# The functions tf.numpy_function calls are the module's, never a stream's methods: what a
# pipeline's threads call stays alive however long they outlive the stream that built it.
def _decode_image(path, height, width, channels):
    from tfvae.data.image_folders import read_image_file

    return read_image_file(path, None if height == 0 else [int(height), int(width)],
                           int(channels))


_MAPPED = {}  # (.npy path, its modification time) -> its memory map, opened once


def _rows_of_npy(path, rows, dtype):
    key = (path, os.stat(path).st_mtime_ns)
    if key not in _MAPPED:
        _MAPPED[key] = np.load(os.fsdecode(path), mmap_mode="r", allow_pickle=False)
    return _MAPPED[key][rows].astype(dtype.decode(), copy=False)


class MemoryMappedArray(IndexedStream):
    """The examples of an ``.npy`` file, memory-mapped: pages are read as batches gather them.
    Integer grey levels are stored uint8 (k/255); floats are float32."""

    def __init__(self, where, path, array, example_shape, labels=None):
        super().__init__(where, example_shape, np.arange(len(array)), labels)
        self.path, self.array = path, array
        self.dtype = np.uint8 if array.dtype == np.uint8 else np.float32

    def _read(self, positions, batch_size, drop_remainder):
        index = tf.constant(self.index)
        dtype = tf.as_dtype(self.dtype)

        def gather(batch):
            x = tf.numpy_function(_rows_of_npy, [self.path, tf.gather(index, batch), dtype.name],
                                  dtype, stateful=False)
            x = tf.reshape(x, (-1, *self.example_shape))
            return tf.ensure_shape(x, (None, *self.example_shape)), self._labels(batch)

        return positions.batch(batch_size, drop_remainder=drop_remainder).map(
            gather, num_parallel_calls=tf.data.AUTOTUNE)

    def fingerprint(self):
        stat = os.stat(self.path)
        return hashlib.sha256(repr((os.path.basename(self.path), stat.st_size, stat.st_mtime_ns,
                                    self.array.dtype.str, self.example_shape,
                                    self.index[:1].tolist(), len(self))).encode()).hexdigest()


def window_size(stream):
    """Examples per shuffled window of a sequential ``stream``: about 64 MB of them."""
    example = math.prod(stream.example_shape) * np.dtype(stream.dtype).itemsize
    return max(64, min(len(stream), _SHUFFLE_BYTES // max(1, example)))


def permuted_windows(ds, key, window):
    """``ds`` with each window of ``window`` elements permuted by ``key`` (seed, epoch) and the
    window's number: stateless, so the order is the same however the pipeline is rebuilt."""
    def permuted(number, elements):
        order = tf.argsort(tf.random.stateless_uniform(
            tf.shape(tf.nest.flatten(elements)[0])[:1],
            seed=tf.stack([key[0], key[1] * 1_000_003 + number])))
        return tf.nest.map_structure(lambda part: tf.gather(part, order), elements)

    return ds.batch(window).enumerate().map(permuted).unbatch()


def read_binary_as_binary(*splits):
    """Whether uint8 ``splits`` hold only 0 and 1 (by a sample of their first examples); then
    they are read as 0 and 1, as integer arrays of 0 and 1 are (not as levels k/255)."""
    binary = all(x.dtype == np.uint8 and x.head(256).max(initial=0) <= 1 / 255 for x in splits)
    for x in splits if binary else ():
        x.levels = 1
    return binary


def is_stream(x):
    return isinstance(x, Stream)


def head(x, n):
    """The first ``n`` examples of an array or a stream, as an array."""
    return x.head(n) if is_stream(x) else x[:n]


def mean_example(x):
    """The mean example of an array, or of a sample spread over a stream."""
    return x.mean_example() if is_stream(x) else x.mean(axis=0)


def refuse_binarization(mode, name):
    """Streams are not binarized on the host: only "none", or "dynamic" on the training split
    (the model draws it) with a test split held in memory."""
    raise InputError("binarize", f"none for a streamed dataset (or {arg('storage', 'memory')} "
                     "to binarize it in memory)", f"{mode!r} for {name}")
