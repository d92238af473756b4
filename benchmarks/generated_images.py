"""Folders of generated 64x64 colour images (a linear gradient between two colours under one to
three discs and boxes), written once under a cache folder, for the benchmarks that train on
colour images."""

import multiprocessing
import os
import sys
import time
from pathlib import Path


def image(i, size):
    """Image ``i``: a linear gradient between two colours under one to three discs and boxes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:size, 0:size] / size
    a = rng.uniform(-1, 1, 2)
    t = a[0] * x + a[1] * y
    t = (t - t.min()) / (np.ptp(t) + 1e-6)
    c0, c1 = rng.uniform(0, 255, (2, 3))
    pixels = c0 + t[..., None] * (c1 - c0)
    for _ in range(rng.integers(1, 4)):
        cx, cy = rng.uniform(0.15, 0.85, 2)
        r = rng.uniform(0.08, 0.3)
        if rng.random() < 0.5:
            inside = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        else:
            inside = (abs(x - cx) < r) & (abs(y - cy) < r * rng.uniform(0.4, 1))
        pixels[inside] = rng.uniform(0, 255, 3)
    return Image.fromarray(pixels.astype(np.uint8))


def _write_images(job):
    folder, start, stop, size, suffix = job
    for i in range(start, stop):
        picture = image(i, size)
        if suffix == "png":
            picture.save(folder / f"{i:07d}.png", compress_level=1)
        else:
            picture.save(folder / f"{i:07d}.jpg", quality=90)


def image_folder(cache, n, size, suffix):
    """A folder of ``n`` generated ``size`` x ``size`` RGB images (``suffix`` png or jpg) under
    ``cache``, made once (in a ``.partial`` folder renamed when complete)."""
    folder = Path(cache) / f"{suffix}{size}-{n}"
    if folder.is_dir():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    chunk = 2000
    jobs = [(partial, s, min(n, s + chunk), size, suffix) for s in range(0, n, chunk)]
    started = time.perf_counter()
    if n <= chunk:
        list(map(_write_images, jobs))
    else:
        with multiprocessing.get_context("spawn").Pool(os.cpu_count()) as pool:
            list(pool.imap_unordered(_write_images, jobs))
    os.rename(partial, folder)
    print(f"generated {n:,} {size}x{size} {suffix.upper()} images in {folder} "
          f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return folder
