"""Reading the files users give as data into arrays: .npz, .npy and IDX (optionally gzipped);
folders of images are :mod:`tfvae.data.image_folders`'. A file that cannot be read, for any
reason, raises one :class:`tfvae.errors.InputError` naming the argument and the file.
"""

import gzip
import math
import os
import stat
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np

from tfvae.data.validation import validate_images
from tfvae.errors import InputError, arg

FILE_EXPECTED = ("an existing .npz, .npy, IDX file, table (.csv, .tsv, .parquet) or image "
                 "folder")
# What numpy, zipfile, gzip and zlib raise on a file that is not what its name says, or is cut
# short.
_UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, zlib.error,
               struct.error, SyntaxError, tokenize.TokenError)  # the last two: .npy headers
# Deflate expands at most 1032 to 1: a gzip stream or zip member claiming more than that many
# bytes per compressed byte is lying, and is refused before anything is decompressed.
DEFLATE_RATIO = 1032
_CHUNK = 1 << 20


def _unreadable(path, exc, part=""):
    """What to say about a file (``part`` of it) numpy could not read; never numpy's advice on
    pickles."""
    reason = str(exc) if isinstance(exc, OSError) else "corrupt, truncated or not in this format"
    return f"{str(path)!r}{part} ({reason})"


def memory_bytes():
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_claim(argument, where, claimed, limit, why, in_memory=True):
    """Refuse a file whose header claims more bytes than ``limit`` (what the file can hold:
    its size, or its compressed size times :data:`DEFLATE_RATIO`) or, ``in_memory``, than this
    machine's memory, before anything that size is allocated."""
    memory = memory_bytes() if in_memory else None
    if claimed > limit:
        raise InputError(argument, f"a file whose header matches its contents ({why})",
                         f"{where}, whose header claims {claimed:,} bytes of data")
    if memory is not None and claimed > memory:
        raise InputError(argument, f"data that fits in this machine's {memory:,} bytes of memory",
                         f"{where}, whose header claims {claimed:,} bytes")


def _npy_header(f, path, argument, expected, part=""):
    """(shape, dtype, data bytes claimed) from an .npy stream at its start; the stream is left
    at the first data byte. Object arrays (pickles) are refused."""
    try:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"format version {version}")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(f)
    except _UNREADABLE as exc:
        raise InputError(argument, expected, _unreadable(path, exc, part)) from exc
    if dtype.hasobject:
        raise InputError(argument, expected, f"{str(path)!r}{part} (an array of Python objects, "
                         "which tfvae does not read)")
    return shape, dtype, math.prod(shape) * dtype.itemsize


def read_npy(path, argument, expected=FILE_EXPECTED):
    """The array of an .npy file, after checking that its header's size matches the file."""
    try:
        with open_regular(path) as f:
            _, _, claimed = _npy_header(f, path, argument, expected)
            check_claim(argument, repr(str(path)), claimed, os.fstat(f.fileno()).st_size - f.tell(),
                        "array bytes as its .npy header gives")
            f.seek(0)
            return np.lib.format.read_array(f, allow_pickle=False)
    except InputError:  # a ValueError, already naming the file
        raise
    except _UNREADABLE as exc:
        raise InputError(argument, expected, _unreadable(path, exc)) from exc


def memory_map_npy(path, argument, expected=FILE_EXPECTED):
    """The array of an .npy file, memory-mapped read-only (nothing read until used), after the
    checks of :func:`read_npy`."""
    try:
        with open_regular(path) as f:
            _, _, claimed = _npy_header(f, path, argument, expected)
            check_claim(argument, repr(str(path)), claimed, os.fstat(f.fileno()).st_size - f.tell(),
                        "array bytes as its .npy header gives", in_memory=False)
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except InputError:
        raise
    except _UNREADABLE as exc:
        raise InputError(argument, expected, _unreadable(path, exc)) from exc


def open_regular(path):
    """``path`` opened for binary reading, or OSError if it is not a regular file. Opened without
    blocking and checked on the open file, so a FIFO or a device named like an image (or put in
    its place after a check) is never read."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class NpzArrays(Mapping):
    """The arrays of an .npz file by key, each read (and checked) only when asked for: a key the
    command does not use costs nothing."""

    def __init__(self, path, argument, expected=FILE_EXPECTED):
        self.path, self.argument, self.expected = path, argument, expected
        try:
            with open_regular(path) as f, zipfile.ZipFile(f) as z:
                self._members = {name.removesuffix(".npy"): name for name in z.namelist()
                                 if name.endswith(".npy")}
        except InputError:  # a ValueError, already naming the file
            raise
        except _UNREADABLE as exc:
            raise InputError(argument, expected, _unreadable(path, exc)) from exc
        self._arrays = {}

    def __getitem__(self, key):
        if key not in self._arrays:
            self._arrays[key] = self._read(self._members[key])
        return self._arrays[key]

    def __iter__(self):
        return iter(self._members)

    def __len__(self):
        return len(self._members)

    def _read(self, name):
        part = f" array {name!r}"
        where = f"{str(self.path)!r}{part}"
        try:
            with open_regular(self.path) as file, zipfile.ZipFile(file) as z:
                info = z.getinfo(name)
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise InputError(self.argument, "an .npz written by numpy (stored or "
                                     "deflated)", f"{where} compressed by method "
                                     f"{info.compress_type}")
                ratio = 1 if info.compress_type == zipfile.ZIP_STORED else DEFLATE_RATIO
                check_claim(self.argument, where, info.file_size,
                            info.compress_size * ratio + 1024, "zip member sizes")
                with z.open(info) as f:
                    _, _, claimed = _npy_header(f, self.path, self.argument, self.expected, part)
                    check_claim(self.argument, where, claimed, info.file_size - f.tell(),
                                "array bytes as its .npy header gives")
                    f.seek(0)
                    array = np.lib.format.read_array(f, allow_pickle=False)
                    f.read(1)  # to the member's end, where zipfile checks its CRC
                return array
        except InputError:  # a ValueError, already naming the file
            raise
        except _UNREADABLE as exc:
            raise InputError(self.argument, self.expected,
                             _unreadable(self.path, exc, part)) from exc


def read_npz(path, argument, expected=FILE_EXPECTED):
    """The arrays of an .npz file, by key (:class:`NpzArrays`: read when asked for)."""
    if not path.is_file():
        raise InputError(argument, expected, repr(str(path)))
    return NpzArrays(path, argument, expected)


def read_idx_array(path, argument="name"):
    """Read an IDX file (the raw MNIST format): big-endian header, then unsigned bytes.

    The data is read into an array of the size the header claims, once that claim is checked
    against the file's size (or, gzipped, its most a deflate stream can expand to); a stream
    with fewer or more bytes than claimed is refused without reading past the claim.
    """
    gz = path.suffix == ".gz"
    try:
        with open_regular(path) as file, (gzip.GzipFile(fileobj=file) if gz else file) as f:
            size = os.fstat(file.fileno()).st_size
            magic = f.read(4)
            # Two zero bytes, 0x08 (unsigned byte data), then the number of dimensions.
            if len(magic) < 4 or magic[:3] != b"\x00\x00\x08" or magic[3] == 0:
                raise InputError(argument, FILE_EXPECTED, f"{str(path)!r} (no IDX header of "
                                 "unsigned bytes)")
            raw_dims = f.read(4 * magic[3])
            if len(raw_dims) < 4 * magic[3]:
                raise InputError(argument, FILE_EXPECTED, f"{str(path)!r} (its IDX header is "
                                 "truncated)")
            dims = struct.unpack(f">{magic[3]}I", raw_dims)
            claimed, header = math.prod(dims), 4 + 4 * magic[3]
            limit = size * DEFLATE_RATIO if gz else size - header
            check_claim(argument, repr(str(path)), claimed, limit,
                        f"the bytes of the IDX header {dims}")
            pixels = np.empty(claimed, np.uint8)
            view, done = memoryview(pixels), 0
            while done < claimed:
                count = f.readinto(view[done:done + _CHUNK])
                if not count:
                    break
                done += count
            extra = len(f.read(1))
    except InputError:  # a ValueError, already naming the file
        raise
    except _UNREADABLE as exc:
        raise InputError(argument, FILE_EXPECTED, _unreadable(path, exc)) from exc
    if done != claimed or extra:
        expected = f"{claimed} bytes after the IDX header {dims}"
        raise InputError(arg(argument, str(path)), expected,
                         f"{done} bytes" if done != claimed else "more")
    return pixels.reshape(dims)


def read_idx(path, argument):
    """The images of an IDX file as validated float32 [N, H, W, 1]."""
    return validate_images(read_idx_array(path, argument), argument=arg(argument, str(path)),
                           bernoulli=True)


def idx_labels(images_path, count):
    """Labels from the sibling file named like the images file, with "labels" for "images"."""
    if "images" not in images_path.name:
        return None
    stem = images_path.name.replace("images", "labels").replace("idx3", "idx1")
    stem = stem.removesuffix(".gz")
    for candidate in (images_path.with_name(stem), images_path.with_name(stem + ".gz")):
        if candidate.is_file():
            labels = read_idx_array(candidate, "name")
            if labels.shape != (count,):
                expected = f"{count} labels, one per image"
                raise InputError(arg("name", str(candidate)), expected, f"shape {labels.shape}")
            return labels.astype(np.int64)
    return None
