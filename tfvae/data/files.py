"""Reading the files users give as data into arrays: .npz, .npy, IDX (optionally gzipped) and
folders of images. A file that cannot be read, for any reason, raises one
:class:`tfvae.errors.InputError` naming the argument and the file; in an image folder, such
files are named in one warning and left out, and only a folder with no readable image is refused.
"""

import gzip
import math
import os
import stat
import struct
import sys
import tokenize
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from tfvae.data.validation import validate_images
from tfvae.errors import InputError, arg, render

FILE_EXPECTED = ("an existing .npz, .npy, IDX file, table (.csv, .tsv, .parquet) or image "
                 "folder")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# Pillow's modes of grey images (1 bit, 8 bits, 8 bits with alpha; and 16 bits, "I;16...");
# any other mode is colour.
GREY_MODES = ("1", "L", "LA")
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


def estimate_image_folder(folder, argument, image_size=None):
    """``(count, [H, W, C])``: how many image files ``folder`` holds and the shape of its first
    readable one (resized to ``image_size``), from one header: the size of the folder in memory
    before anything is read."""
    from PIL import Image

    files = _image_files(folder, argument)
    for path in (Path(folder, name) for name in files):
        try:
            with open_regular(path) as f, Image.open(f) as img:
                grey = img.mode in GREY_MODES or img.mode.startswith("I;16")
                h, w = (img.size[1], img.size[0]) if image_size is None else image_size
                return len(files), [h, w, 1 if grey else 3]
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            continue
    return len(files), [0, 0, 0]


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


def read_image_folder(folder, argument, image_size=None):
    """Images of ``folder`` sorted by file name, as uint8 ``[N, H, W, C]``.

    C is 3 when any image is in colour (grey ones are then repeated in R, G and B), else 1.
    ``image_size`` ``[H, W]`` resizes each image as it is read (:func:`resize`); without it every
    image must have one size. Files that are not readable images are named in one warning on
    stderr and left out; if none is readable, InputError.
    """
    from PIL import Image  # only image folders need Pillow

    files = _image_files(folder, argument)
    images, names, unreadable = [], [], []
    for path in (Path(folder, name) for name in files):
        try:
            with open_regular(path) as f, Image.open(f) as img:
                _check_claimed_size(img, os.fstat(f.fileno()).st_size)
                images.append(_read_pixels(img, image_size))
                names.append(path.name)
        # What Pillow raises on a file that is not an image, is cut short or is corrupt (and
        # open_regular on one that is not a regular file).
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            unreadable.append(path.name)
    _report_unreadable(folder, argument, files, unreadable, bool(images))
    _check_one_size(folder, argument, names, [array.shape[:2] for array in images])
    colour = any(array.ndim == 3 for array in images)
    return np.stack([np.repeat(array[..., np.newaxis], 3 if colour else 1, axis=-1)
                     if array.ndim == 2 else array for array in images])


def scan_image_folder(folder, argument, image_size=None):
    """``(names, file sizes, [H, W, C])`` of the readable images of ``folder`` by their headers
    alone, sorted by name: what :func:`read_image_folder` would read, with the same warning and
    errors, without decoding a pixel (for a folder streamed as training reads it). The names are
    a numpy array of bytes and the sizes of int64: compact for a million files."""
    from PIL import Image

    files = _image_files(folder, argument)
    readable = np.zeros(len(files), bool)
    sizes = np.zeros(len(files), np.int64)
    first, unreadable, colour = None, [], False
    for i, path in enumerate(Path(folder, name) for name in files):
        try:
            with open_regular(path) as f, Image.open(f) as img:
                sizes[i] = os.fstat(f.fileno()).st_size
                _check_claimed_size(img, sizes[i])
                colour = colour or not (img.mode in GREY_MODES or img.mode.startswith("I;16"))
                shape = (img.size[1], img.size[0])
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            unreadable.append(path.name)
            continue
        readable[i] = True
        if first is None:
            first = (path.name, shape)
        elif image_size is None and shape != first[1]:
            _check_one_size(folder, argument, [first[0], path.name], [first[1], shape])
    _report_unreadable(folder, argument, files, unreadable, first is not None)
    h, w = first[1] if image_size is None else image_size
    names = np.array([os.fsencode(name) for name in files])[readable]
    return names, sizes[readable], [h, w, 3 if colour else 1]


_UNREADABLE_IMAGE = "is not a readable image"


def read_image_file(path, image_size, channels):
    """One image file as :func:`read_image_folder` reads it, uint8 [H, W, channels]; a file
    that cannot be read raises ValueError naming it (:func:`unreadable_in` finds the line in
    the error of the ``tf.data`` pipeline that read it)."""
    from PIL import Image

    try:
        with open_regular(path) as f, Image.open(f) as img:
            _check_claimed_size(img, os.fstat(f.fileno()).st_size)
            pixels = _read_pixels(img, image_size)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{os.fsdecode(path)!r} {_UNREADABLE_IMAGE} ({exc}): remove or "
                         "replace it, then start again (the data has changed)") from None
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., np.newaxis], channels, axis=-1)
    return pixels


def unreadable_in(error):
    """The line of :func:`read_image_file`'s error within ``error`` (a TensorFlow error of the
    pipeline that read the file), or None."""
    for line in str(getattr(error, "message", error)).splitlines():
        if _UNREADABLE_IMAGE in line:
            return line[line.index("ValueError: ") + 12:] if "ValueError: " in line else line
    return None


def _image_files(folder, argument):
    """The names of ``folder``'s files named like images, sorted: one short string each (a
    million of them take tens of MB)."""
    files = sorted(entry.name for entry in os.scandir(folder)
                   if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES)
    if not files:
        expected = f"a folder with {'/'.join(IMAGE_SUFFIXES)} images"
        raise InputError(argument, expected, repr(str(folder)))
    return files


def _report_unreadable(folder, argument, files, unreadable, any_read):
    """Refuse a folder with no readable image; name the files left out in one warning."""
    if not any_read:
        got = f"none of its {len(files)} image files readable ({_names(unreadable)})"
        raise InputError(arg(argument, str(folder)), "readable images", got)
    if unreadable:
        print(f"tfvae: warning: {render(arg(argument, str(folder)))}: left out "
              f"{len(unreadable)} of {len(files)} files that are not readable images: "
              f"{_names(unreadable)}", file=sys.stderr)


def _check_one_size(folder, argument, names, shapes):
    for name, shape in zip(names, shapes):
        if shape != shapes[0]:
            (h, w), (h2, w2) = shapes[0], shape
            raise InputError(arg(argument, str(folder)),
                             f"images of one size, {h}x{w} as in {names[0]} (or "
                             f"{arg('image_size', 'H W')} to resize them all)",
                             f"{h2}x{w2} in {name}")


def resize(images, image_size):
    """Float images ``[N, H, W, C]`` resized to ``image_size`` ``[H', W']``, as the folder
    reader resizes each file."""
    from PIL import Image

    h, w = image_size
    out = np.empty((len(images), h, w, images.shape[-1]), np.float32)
    for i, image in enumerate(images):
        for c in range(images.shape[-1]):
            out[i, ..., c] = _resized(Image.fromarray(image[..., c].astype(np.float32)),
                                      image_size)
    return out


# The most an image format expands its bytes (LZW's 12-bit codes for strings of up to 4,096
# bytes, under 4 x deflate's ratio), and a floor for small files.
_IMAGE_EXPANSION = 4 * DEFLATE_RATIO
_IMAGE_FLOOR = 2 ** 24


def _check_claimed_size(img, file_size):
    """Refuse an image whose header claims more pixels than its file's bytes can encode: Pillow
    allocates the whole claimed image before it decodes a byte."""
    claimed = img.size[0] * img.size[1] * len(img.getbands())
    if claimed > _IMAGE_EXPANSION * file_size + _IMAGE_FLOOR:
        raise ValueError(f"its header claims {img.size[0]}x{img.size[1]} pixels, more than its "
                         f"{file_size:,} bytes can hold")


def _read_pixels(img, image_size):
    """One opened image as uint8 [H, W] (grey) or [H, W, 3] (colour), resized if asked."""
    from PIL import Image

    grey = img.mode in GREY_MODES or img.mode.startswith("I;16")
    if image_size is not None:
        # JPEG only: decode at the smallest scale (1/2, 1/4, 1/8) still at least the size asked.
        img.draft("L" if grey else "RGB", (image_size[1], image_size[0]))
    if img.mode.startswith("I;16"):  # 16-bit grey: Pillow's convert("L") clips, not scales
        img = Image.fromarray(np.round(np.asarray(img) / 257).astype(np.uint8))
    img = img.convert("L" if grey else "RGB")
    return np.asarray(img if image_size is None else _resized(img, image_size))


def _resized(img, image_size):
    """Stretched to [H, W] (no crop). Bilinear, antialiased when shrinking: its weights are all
    positive, so values stay in the range of the input (pixels in [0, 1] stay there)."""
    from PIL import Image

    h, w = image_size
    return np.asarray(img.resize((w, h), Image.Resampling.BILINEAR))


def _names(names, shown=5):
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown
                                       else "")
