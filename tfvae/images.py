"""Images of a model and of data, as arrays and PNG grids: every picture tfvae makes (``tfvae
sample`` and ``reconstruct``, the TensorBoard images, the projector's sprite, the paper's
manifold) is made here.

- :func:`sample_images` is the one place that draws from a model's ``sample``.
- :func:`reconstruction_grid` sets images beside their reconstructions.
- :func:`manifold_images` decodes a regular grid over a 2-D latent space (the paper's Figure 4).
- :func:`grid` and :func:`save_grid` tile images into one picture.
"""

import math

import numpy as np

from tfvae.storage import check_output, write_bytes


def sample_images(model, num, seed=0, labels=None, temperature=1.0):
    """``num`` images [num, *E] of ``model``: the means of p(x|z) for z ~ p(z) (at
    ``temperature``), the same for the same ``seed`` (given the ``labels`` of a conditional
    model)."""
    return np.asarray(model.sample(num, seed=seed, labels=labels, temperature=temperature),
                      np.float32)


def class_rows(model, num):
    """``(labels [num], columns)`` that lay ``num`` samples of a conditional model out a row per
    class, in class order."""
    columns = math.ceil(num / model.num_classes)
    return np.arange(num) // columns, columns


def reconstruction_grid(model, x, columns=8, labels=None):
    """Originals and their reconstructions (given the ``labels`` of a conditional model) in
    alternating rows of ``columns``: [2 * rows * columns, *E]. A short last pair of rows is
    filled with blank (white) cells, so that each reconstruction sits under its original."""
    x = np.asarray(model.images(x), np.float32)  # checked, scaled to [0, 1], shaped [N, *E]
    recon = np.asarray(model.reconstruct(x, labels), np.float32)
    blank = np.ones((columns, *x.shape[1:]), np.float32)
    rows = [np.concatenate([part, blank[:columns - len(part)]])
            for i in range(0, len(x), columns)
            for part in (x[i:i + columns], recon[i:i + columns])]
    return np.concatenate(rows)


def manifold_latents(grid):
    """z [grid*grid, 2]: a regular grid on the unit square through the Gaussian inverse CDF.

    Row r, column c holds z = (Phi^-1(p_c), Phi^-1(p_{grid-1-r})), p_i = (i + 1/2) / grid, so
    z_1 grows to the right and z_2 upward.
    """
    from scipy.stats import norm

    z = norm.ppf((np.arange(grid) + 0.5) / grid)
    z1, z2 = np.meshgrid(z, z[::-1])
    return np.stack([z1.ravel(), z2.ravel()], axis=-1).astype(np.float32)


def manifold_images(model, grid=20):
    """The means of p(x|z) over :func:`manifold_latents` of a model with a 2-D latent space:
    [grid*grid, *E], to be tiled ``grid`` columns wide."""
    return np.asarray(model.decode(manifold_latents(grid)).mean(), np.float32)


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


def png_bytes(pixels):
    """A uint8 image [H, W, C] (C 1 or 3) as PNG bytes."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, "PNG")
    return buffer.getvalue()


def save_grid(images, path, columns=None, scale=2, *, overwrite=True, argument="out"):
    """Write ``images`` as a PNG grid; ``scale`` enlarges each pixel for viewing. Unless
    ``overwrite``, an existing ``path`` is kept (``tfvae.storage.write_atomic``)."""
    path = check_output(path, ".png", overwrite=True, argument=argument)
    pixels = grid(images, columns)
    if scale > 1:
        pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    return write_bytes(path, png_bytes(pixels), overwrite=overwrite, argument=argument)
