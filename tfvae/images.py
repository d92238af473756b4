"""Image grids written as PNG files."""

import math

import numpy as np

from tfvae.storage import check_output, write_atomic


def grid(images, columns=None, padding=1):
    """[N, H, W, C] values in [0, 1] -> one uint8 image [rows*(H+p), columns*(W+p), C]."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    out = np.ones((rows * (h + padding) + padding, columns * (w + padding) + padding, c),
                  np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        out[top:top + h, left:left + w] = image
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def save_grid(images, path, columns=None, scale=2):
    """Write ``images`` as a PNG grid; ``scale`` enlarges each pixel for viewing."""
    from PIL import Image

    path = check_output(path, ".png", overwrite=True)
    pixels = grid(images, columns)
    pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
    image = Image.fromarray(pixels)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    write_atomic(path, lambda tmp: image.save(tmp, format="PNG"))
    return path
