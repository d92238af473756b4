"""Colour images at equal training time: the convolutional VAE of ``docs/image-folders.md``
against the residual body with the discretized logistic (``docs/resnet.md``).

Sets (each a folder of files, read as ``tfvae train --dataset FOLDER --image-size 64 64`` reads
it; the test split is the last tenth by name):

- ``shapes``: ``--images`` generated 64x64 images, shapes on gradients
  (``generated_images.py``);
- ``photos`` (with ``--photos DIR``): ``--images`` square crops of random position and side
  (64 pixels up to the photo's shorter side) of the photographs in DIR, saved as JPEG files of
  those sizes, so the reader shrinks each to 64x64.

Models (``--models``):

- ``conv``: the convolutional body, Gaussian likelihood, ``--latent-dim 64 --hidden 256``, batch
  64, Adam 1e-3 (the recipe of ``docs/image-folders.md``);
- ``resnet``: the residual body (``--hidden 32 --depth 1``, gelu), the discretized logistic,
  ``--latent-dim 64``, batch 64, Adam 1e-3, gradients clipped at norm 200 (no average of the
  weights: ten minutes are about 1,200 steps, and an average with VDVAE's decay would still hold
  much of the first steps' weights);
- ``groups``: ``resnet`` with 4 latent groups of 8 channels (``--latent-groups 4``).

Each model trains in a fresh child process for ``--minutes`` of wall-clock time (its epochs'
test bounds and checkpoints included; it stops after the step that passes the limit), then is
scored on the test split: the mean squared error of its reconstructions' means (per value, in
[0, 1] units) and their PSNR, beside the error of the training set's mean image (what a
reconstruction that ignores its input reaches, the grey case), and the test bound. A grid of 16
test images above their reconstructions and a grid of 32 samples go to ``OUT``. With
``--parallel``, the models of a set train two at a time, each held to its own core.

    python benchmarks/colour_images.py [--minutes 10] [--images 3000] [--photos DIR]
                                       [--models conv,resnet] [--parallel] [--out runs/colour]
"""

import argparse
import concurrent.futures
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from generated_images import image_folder  # noqa: E402

TRAINING = {"batch_size": 64, "optimizer": "adam", "learning_rate": 1e-3, "seed": 0}
RESNET = {"architecture": "resnet", "likelihood": "discretized_logistic", "latent_dim": 64,
          "hidden": 32, "depth": 1, "activation": "gelu"}
MODELS = {
    "conv": ({"architecture": "conv", "likelihood": "gaussian", "latent_dim": 64,
              "hidden": 256}, {}),
    "resnet": (RESNET, {"clip_norm": 200.0}),
    "groups": ({**RESNET, "latent_groups": 4, "latent_dim": 8}, {"clip_norm": 200.0}),
}
SIZE = 64
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def photo_crops(photos, cache, n):
    """A folder of ``n`` square crops of the photographs in ``photos`` under ``cache``, made
    once: random positions and sides (SIZE up to the photo's shorter side), JPEG quality 95."""
    import numpy as np
    from PIL import Image

    sources = sorted(p for p in Path(photos).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not sources:
        raise SystemExit(f"--photos {photos}: no .jpg, .jpeg or .png file in it")
    folder = Path(cache) / f"crops{n}-{Path(photos).resolve().name}"
    if folder.is_dir():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    images = [Image.open(p).convert("RGB") for p in sources]
    rng = np.random.default_rng(0)
    for i in range(n):
        image = images[i % len(images)]
        w, h = image.size
        side = int(rng.integers(SIZE, min(w, h) + 1))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        image.crop((left, top, left + side, top + side)).save(partial / f"{i:06d}.jpg",
                                                              quality=95)
    os.rename(partial, folder)
    return folder


def child(name, folder, minutes, out, core):
    """Train model ``name`` on ``folder`` for ``minutes``, score it, write its grids; print a
    JSON row."""
    if int(core) >= 0:
        os.sched_setaffinity(0, {int(core)})  # before TensorFlow counts the cores it may use
    import keras
    import numpy as np

    from tfvae.images import reconstruction_grid, sample_images, save_grid
    from tfvae.runs import RunDirectory
    from tfvae.training.pipeline import train

    class WallClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.end = time.perf_counter() + float(minutes) * 60

        def on_train_batch_end(self, batch, logs=None):
            if time.perf_counter() > self.end:
                self.model.stop_training = True

    model_config, controls = MODELS[name]
    out = Path(out)
    run_dir = out / "runs" / name
    train(run_dir, model_config=model_config,
          data_config={"name": str(folder), "image_size": [SIZE, SIZE]}, epochs=10 ** 6,
          verbose=0, overwrite=True, callbacks=[WallClock()], **TRAINING, **controls)
    run = RunDirectory(run_dir)
    rows = run.read_metrics()
    model = run.load_model("model")
    data = run.load_dataset()
    x_test = np.asarray(data.x_test, np.float32)
    recon = np.asarray(model.reconstruct(x_test), np.float32)
    mse = float(np.mean((recon - x_test) ** 2))
    mean_mse = float(np.mean((np.asarray(data.x_train, np.float32).mean(0) - x_test) ** 2))
    bound = float(np.mean(model.elbo(x_test, seed=0)))
    save_grid(reconstruction_grid(model, x_test[:16], columns=8),
              out / f"{name}-reconstructions.png", columns=8, scale=1)
    save_grid(sample_images(model, 32, seed=0), out / f"{name}-samples.png", columns=8,
              scale=1)
    print(json.dumps({
        "model": name, "epochs": len(rows),
        "minutes": round(sum(r["seconds"] for r in rows) / 60, 1),

        "mse": mse, "psnr_db": 10 * math.log10(1 / mse), "mean_image_mse": mean_mse,
        "test_bound_nats": bound, "bits_per_dim": -bound / (x_test[0].size * math.log(2))
        if model_config["likelihood"] == "discretized_logistic" else None}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--photos", type=Path, help="a folder of photographs to crop")
    parser.add_argument("--models", default="conv,resnet",
                        help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--parallel", action="store_true",
                        help="train two models at a time, each on its own core")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/tfvae-bench-data"))
    parser.add_argument("--out", type=Path, default=Path("runs") / "colour")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    unknown = [m for m in models if m not in MODELS]
    if unknown or args.minutes <= 0 or args.images < 20:
        parser.error(f"--models takes {', '.join(MODELS)} (given {args.models}); --minutes "
                     f"must be positive and --images at least 20")
    sets = {"shapes": image_folder(args.cache, args.images, SIZE, "png")}
    if args.photos:
        sets["photos"] = photo_crops(args.photos, args.cache, args.images)
    print(f"machine: {common.machine()}")
    report = {"machine": common.machine(), "minutes": args.minutes, "images": args.images,
              "sets": {}}
    for set_name, folder in sets.items():
        out = args.out / set_name

        def run(job):
            i, name = job
            core = i % 2 if args.parallel else -1
            return common.run_child([__file__, "--child", name, folder, args.minutes, out,
                                     core], timeout=None)

        with concurrent.futures.ThreadPoolExecutor(2 if args.parallel else 1) as pool:
            rows = list(pool.map(run, enumerate(models)))
        report["sets"][set_name] = rows
        print(f"\n{set_name} ({folder}; {args.minutes:g} minutes each"
              f"{', two at a time, one core each' if args.parallel else ''}):")
        common.print_table([{k: common._fmt(v) if isinstance(v, float) else v
                             for k, v in r.items()} for r in rows],
                           ["model", "epochs", "minutes", "mse", "psnr_db", "mean_image_mse",
                            "test_bound_nats", "bits_per_dim"])
        print(f"grids: {out}/MODEL-reconstructions.png, {out}/MODEL-samples.png")
    (args.out / "colour_images.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:])
    else:
        sys.exit(main())
