"""Reading the files users give as data into arrays: .npz, .npy, IDX (optionally gzipped) and
folders of images. A file that cannot be read, for any reason, raises one
:class:`tfvae.errors.InputError` naming the argument and the file.
"""

import gzip
import math
import struct
import zipfile

import numpy as np

from tfvae.data.validation import validate_images
from tfvae.errors import InputError

FILE_EXPECTED = "an existing .npz, .npy, IDX file or image folder"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# What numpy and zipfile raise on a file that is not what its name says, or is cut short.
_UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError)


def _unreadable(path, exc):
    """What to say about a file numpy could not read; never numpy's advice on pickles."""
    reason = str(exc) if isinstance(exc, OSError) else "corrupt, truncated or not in this format"
    return f"{str(path)!r} ({reason})"


def read_npz(path, argument, expected=FILE_EXPECTED):
    """Every array of an .npz file, by key."""
    if not path.is_file():
        raise InputError(argument, expected, repr(str(path)))
    try:
        with np.load(path, allow_pickle=False) as f:
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            return {key: f[key] for key in f.files}
    except _UNREADABLE as exc:
        raise InputError(argument, expected, _unreadable(path, exc)) from exc


def read_npy(path, argument, expected=FILE_EXPECTED):
    """The array of an .npy file."""
    try:
        array = np.load(path, allow_pickle=False)
    except _UNREADABLE as exc:
        raise InputError(argument, expected, _unreadable(path, exc)) from exc
    if not isinstance(array, np.ndarray):
        raise InputError(argument, expected, f"{str(path)!r} (not an .npy array)")
    return array


def read_idx_array(path, argument="--dataset"):
    """Read an IDX file (the raw MNIST format): big-endian header, then unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as exc:  # includes a bad gzip stream
        raise InputError(argument, FILE_EXPECTED, f"{str(path)!r} ({exc})") from exc
    # Magic: two zero bytes, 0x08 (unsigned byte data), then the number of dimensions.
    if len(data) < 4 or data[:3] != b"\x00\x00\x08" or data[3] == 0:
        raise InputError(argument, FILE_EXPECTED, repr(str(path)))
    header = 4 + 4 * data[3]
    dims = struct.unpack(f">{data[3]}I", data[4:header])
    pixels = np.frombuffer(data, np.uint8, offset=header)
    if pixels.size != math.prod(dims):
        expected = f"{math.prod(dims)} bytes after the IDX header {dims}"
        raise InputError(f"{argument} {path}", expected, f"{pixels.size}")
    return pixels.reshape(dims)


def read_idx(path, argument):
    """The images of an IDX file as validated float32 [N, H, W, 1]."""
    return validate_images(read_idx_array(path, argument), argument=f"{argument} {path}",
                           bernoulli=True)


def idx_labels(images_path, count):
    """Labels from the sibling file named like the images file, with "labels" for "images"."""
    if "images" not in images_path.name:
        return None
    stem = images_path.name.replace("images", "labels").replace("idx3", "idx1")
    stem = stem.removesuffix(".gz")
    for candidate in (images_path.with_name(stem), images_path.with_name(stem + ".gz")):
        if candidate.is_file():
            labels = read_idx_array(candidate, "--dataset")
            if labels.shape != (count,):
                expected = f"{count} labels, one per image"
                raise InputError(f"--dataset {candidate}", expected, f"shape {labels.shape}")
            return labels.astype(np.int64)
    return None


def read_image_folder(folder, argument):
    """Images of ``folder`` sorted by file name: grey stays 1 channel, colour becomes RGB."""
    from PIL import Image  # only image folders need Pillow

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        expected = f"a folder with {'/'.join(IMAGE_SUFFIXES)} images"
        raise InputError(argument, expected, repr(str(folder)))
    images = []
    for path in files:
        try:
            with Image.open(path) as img:
                array = np.asarray(img.convert("L" if img.mode in ("1", "L", "LA") else "RGB"))
        except OSError as exc:  # unreadable or not really an image
            got = f"{path.name} ({exc})"
            raise InputError(f"{argument} {folder}", "readable images", got) from exc
        array = array[..., np.newaxis] if array.ndim == 2 else array
        if images and array.shape != images[0].shape:
            raise InputError(
                f"{argument} {folder}",
                f"images of one size and channel count, {images[0].shape} as in {files[0].name}",
                f"{array.shape} in {path.name}",
            )
        images.append(array)
    return np.stack(images)
