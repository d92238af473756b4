"""Reading folders of images (.png, .jpg, .bmp) into uint8 arrays, whole or one file at a time,
and their shape from the files' headers alone. Files that are not readable images are named in
one warning and left out; only a folder with no readable image is refused, with one
:class:`tfvae.errors.InputError` naming the argument and the folder.
"""

import os
import sys
from pathlib import Path

import numpy as np

from tfvae.data.files import DEFLATE_RATIO, open_regular
from tfvae.errors import InputError, arg, render

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# Pillow's modes of grey images (1 bit, 8 bits, 8 bits with alpha; and 16 bits, "I;16...");
# any other mode is colour.
GREY_MODES = ("1", "L", "LA")


def _grey(img):
    return img.mode in GREY_MODES or img.mode.startswith("I;16")


def estimate_image_folder(folder, argument, image_size=None):
    """``(count, [H, W, C])``: how many image files ``folder`` holds and the shape of its first
    readable one (resized to ``image_size``), from one header: the size of the folder in memory
    before anything is read."""
    from PIL import Image

    files = _image_files(folder, argument)
    for path in (Path(folder, name) for name in files):
        try:
            with open_regular(path) as f, Image.open(f) as img:
                grey = _grey(img)
                h, w = (img.size[1], img.size[0]) if image_size is None else image_size
                return len(files), [h, w, 1 if grey else 3]
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            continue
    return len(files), [0, 0, 0]



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
                colour = colour or not _grey(img)
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
    reader resizes each file: images on the 256 levels of 8-bit pixels stay on them, as a
    folder's 8-bit files do (a likelihood of 8-bit pixels takes nothing else)."""
    from PIL import Image

    h, w = image_size
    out = np.empty((len(images), h, w, images.shape[-1]), np.float32)
    for i, image in enumerate(images):
        for c in range(images.shape[-1]):
            out[i, ..., c] = _resized(Image.fromarray(image[..., c].astype(np.float32)),
                                      image_size)
    levels = np.asarray(images, np.float32) * 255
    if np.array_equal(levels, np.round(levels)):
        out = np.round(out * 255) / np.float32(255)
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

    grey = _grey(img)
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
