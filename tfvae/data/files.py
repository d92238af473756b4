"""Reading the files users give as data into arrays: .npz, .npy, IDX (optionally gzipped) and
folders of images. A file that cannot be read, for any reason, raises one
:class:`tfvae.errors.InputError` naming the argument and the file; in an image folder, such
files are named in one warning and left out, and only a folder with no readable image is refused.
"""

import gzip
import math
import struct
import sys
import zipfile

import numpy as np

from tfvae.data.validation import validate_images
from tfvae.errors import InputError

FILE_EXPECTED = "an existing .npz, .npy, IDX file or image folder"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# Pillow's modes of grey images (1 bit, 8 bits, 8 bits with alpha; and 16 bits, "I;16...");
# any other mode is colour.
GREY_MODES = ("1", "L", "LA")
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


def read_image_folder(folder, argument, image_size=None):
    """Images of ``folder`` sorted by file name, as uint8 ``[N, H, W, C]``.

    C is 3 when any image is in colour (grey ones are then repeated in R, G and B), else 1.
    ``image_size`` ``[H, W]`` resizes each image as it is read (:func:`resize`); without it every
    image must have one size. Files that are not readable images are named in one warning on
    stderr and left out; if none is readable, InputError.
    """
    from PIL import Image  # only image folders need Pillow

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        expected = f"a folder with {'/'.join(IMAGE_SUFFIXES)} images"
        raise InputError(argument, expected, repr(str(folder)))
    images, names, unreadable = [], [], []
    for path in files:
        try:
            with Image.open(path) as img:
                images.append(_read_pixels(img, image_size))
                names.append(path.name)
        # What Pillow raises on a file that is not an image, is cut short or is corrupt.
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            unreadable.append(path.name)
    if not images:
        got = f"none of its {len(files)} image files readable ({_names(unreadable)})"
        raise InputError(f"{argument} {folder}", "readable images", got)
    if unreadable:
        print(f"tfvae: warning: {argument} {folder}: left out {len(unreadable)} of {len(files)} "
              f"files that are not readable images: {_names(unreadable)}", file=sys.stderr)
    for name, array in zip(names, images):
        if array.shape[:2] != images[0].shape[:2]:
            (h, w), (h2, w2) = images[0].shape[:2], array.shape[:2]
            raise InputError(f"{argument} {folder}",
                             f"images of one size, {h}x{w} as in {names[0]} (or --image-size H W "
                             "to resize them all)", f"{h2}x{w2} in {name}")
    colour = any(array.ndim == 3 for array in images)
    return np.stack([np.repeat(array[..., np.newaxis], 3 if colour else 1, axis=-1)
                     if array.ndim == 2 else array for array in images])


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
