"""Measure the seed's applications for docs/applications.md: figures and tables.

Needs the runs of ``benchmarks/applications_runs.sh``. Usage::

    bash benchmarks/applications_runs.sh runs
    python benchmarks/applications.py --runs runs [SECTION ...]

Sections: scatter, probe, finetune, synthesis, augment, compress (default: all). Each prints a
markdown table, writes its figures to docs/figures/ and its numbers to
benchmarks/results/applications.json (merged with the sections run before); ``--out DIR`` writes
both into DIR instead. ``--train-examples``, ``--test-examples``, ``--steps`` (of every classifier
fit) and ``--seeds`` make a quick check of the whole path (at least 1,000 training images: the
probe draws 1,000 labels).
"""

import argparse
import functools
import gzip
import io
import json
import math
import sys
import time
from pathlib import Path

import keras
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfvae.applications.compression import compress, decompress  # noqa: E402
from tfvae.data import load_dataset  # noqa: E402
from tfvae.applications.features import (accuracy, classifier_from_encoder, fit_classifier,  # noqa: E402
                            labelled_subset, latent_means, linear_probe)
from tfvae.images import save_grid  # noqa: E402
from tfvae.applications.synthesis import augment, interpolate  # noqa: E402
from tfvae.runs import load_run  # noqa: E402

FIGURES = ROOT / "docs" / "figures"
RESULTS = ROOT / "benchmarks" / "results" / "applications.json"
SEEDS = (0, 1, 2)
EXAMPLES = {}  # load_dataset's train_examples and test_examples, where given


def mean_std(values):
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values),
            "values": [float(v) for v in values]}


def fmt(cell):
    return f"{cell['mean']:.4f} ± {cell['std']:.4f}" if cell["n"] > 1 else f"{cell['mean']:.4f}"


def mnist():
    return load_dataset("mnist", binarize="none", **EXAMPLES)


# ------------------------------------------------------------------------------------ scatter


def scatter(runs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    data = mnist()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), dpi=80)
    extent = {}
    for ax, (name, run) in zip(axes, (("VAE", "mnist-vae-z2"), ("autoencoder", "mnist-ae-z2"))):
        model, _ = load_run(Path(runs) / run)
        z = latent_means(model, data.x_test)
        points = ax.scatter(z[:, 0], z[:, 1], c=data.y_test, cmap="tab10", s=1.5, vmin=-0.5,
                            vmax=9.5)
        ax.set_title(f"{name}: test-set codes (2-D)")
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
        extent[name] = {"min": z.min(axis=0).tolist(), "max": z.max(axis=0).tolist(),
                        "std": z.std(axis=0).tolist()}
    fig.colorbar(points, ax=axes, ticks=range(10), label="digit")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    # A 64-colour palette keeps the committed figure small.
    Image.open(buffer).convert("RGB").quantize(64).save(FIGURES / "latent_scatter.png",
                                                         optimize=True)

    # Random points of each 20-D latent space, decoded; distance to the nearest training digit.
    x_train = data.x_train.reshape(len(data.x_train), -1)
    rows, result = [], {"extent_2d": extent}
    rng = np.random.default_rng(0)
    for name, run in (("vae", "mnist-vae-z20"), ("autoencoder", "mnist-ae-z20")):
        model, _ = load_run(Path(runs) / run)
        draws = {"N(0, I)": rng.standard_normal((16, 20)).astype(np.float32)}
        if name == "autoencoder":
            codes = latent_means(model, data.x_train)
            draws["N(code mean, code variance)"] = (
                codes.mean(0) + codes.std(0) * rng.standard_normal((16, 20))).astype(np.float32)
        for how, z in draws.items():
            images = model.decode(z).mean().numpy()
            rows.append(images)
            flat = images.reshape(len(images), -1)
            d2 = (flat ** 2).sum(1)[:, None] - 2 * flat @ x_train.T + (x_train ** 2).sum(1)[None]
            rms = np.sqrt(np.maximum(d2.min(axis=1), 0) / flat.shape[1])
            result[f"{name} {how}"] = mean_std(rms)
    # Reference: test digits themselves, to their nearest training digit.
    flat = data.x_test[:16].reshape(16, -1)
    d2 = (flat ** 2).sum(1)[:, None] - 2 * flat @ x_train.T + (x_train ** 2).sum(1)[None]
    result["test digits"] = mean_std(np.sqrt(np.maximum(d2.min(axis=1), 0) / flat.shape[1]))
    save_grid(np.concatenate(rows), FIGURES / "random_points.png", columns=16)
    print("| decoded points (20-D latent) | RMS pixel distance to the nearest training digit |")
    print("|---|---|")
    for key, cell in result.items():
        if key != "extent_2d":
            print(f"| {key} | {fmt(cell)} |")
    return result


# -------------------------------------------------------------------------------------- probe


def probe(runs, steps=2000):
    data = mnist()
    features = {"pixels": (data.x_train.reshape(len(data.x_train), -1),
                           data.x_test.reshape(len(data.x_test), -1))}
    for name, run in (("VAE z", "mnist-vae-z20"), ("autoencoder z", "mnist-ae-z20")):
        model, _ = load_run(Path(runs) / run)
        features[name] = (latent_means(model, data.x_train), latent_means(model, data.x_test))
    result = {}
    for labels in (100, 1000, None):
        seeds = SEEDS if labels else (0,)
        row = {}
        for name, (train, test) in features.items():
            accs = []
            for seed in seeds:
                idx = labelled_subset(data.y_train, labels, seed)
                accs.append(linear_probe(train[idx], data.y_train[idx], test, data.y_test,
                                         unlabelled=train, num_classes=10, steps=steps,
                                         seed=seed))
            row[name] = mean_std(accs)
        result[str(labels or len(data.x_train))] = row
    names = list(features)
    print(f"| labels | {' | '.join(names)} |")
    print("|---" * (len(names) + 1) + "|")
    for labels, row in result.items():
        print(f"| {labels} | {' | '.join(fmt(row[n]) for n in names)} |")
    return result


# ----------------------------------------------------------------------------------- finetune


def finetune(runs, steps=1000):
    data = mnist()
    vae, _ = load_run(Path(runs) / "mnist-vae-z20")
    ae, _ = load_run(Path(runs) / "mnist-ae-z20")
    starts = {"random": (vae, False), "VAE encoder": (vae, True), "autoencoder encoder": (ae, True)}
    result = {}
    for labels in (100, 1000):
        row = {}
        for name, (model, copy) in starts.items():
            accs = []
            for seed in SEEDS:
                idx = labelled_subset(data.y_train, labels, seed)
                keras.utils.set_random_seed(seed)
                classifier = classifier_from_encoder(model, 10, copy_weights=copy)
                fit_classifier(classifier, data.x_train[idx], data.y_train[idx], steps=steps,
                               seed=seed)
                accs.append(accuracy(classifier, data.x_test, data.y_test))
            row[name] = mean_std(accs)
        result[str(labels)] = row
    print(f"| labels | {' | '.join(starts)} |")
    print("|---" * (len(starts) + 1) + "|")
    for labels, row in result.items():
        print(f"| {labels} | {' | '.join(fmt(row[n]) for n in starts)} |")
    return result


# ---------------------------------------------------------------------------------- synthesis


def synthesis(runs, steps=10):
    data = mnist()
    vae, _ = load_run(Path(runs) / "mnist-vae-z20")
    ae, _ = load_run(Path(runs) / "mnist-ae-z20")
    rows = []
    for i, j in ((3, 2), (0, 1), (4, 7)):  # test digits 0 -> 1, 7 -> 2, 4 -> 9
        x0, x1 = data.x_test[i], data.x_test[j]
        for model, path in ((vae, "linear"), (vae, "spherical"), (ae, "linear")):
            rows.append(np.concatenate([x0[None], interpolate(model, x0, x1, steps, path),
                                        x1[None]]))
    save_grid(np.concatenate(rows), FIGURES / "interpolate_mnist.png", columns=steps + 2)

    faces = load_dataset("frey_face", **EXAMPLES)
    frey, _ = load_run(Path(runs) / "frey-vae-z5")
    # From the test face with the lowest code to the one with the highest, along each of the
    # three latent dimensions whose codes spread the most: pairs of different expressions.
    z = latent_means(frey, faces.x_test)
    pairs = [(int(np.argmin(z[:, k])), int(np.argmax(z[:, k])))
             for k in np.argsort(-z.std(axis=0))[:3]]
    rows = []
    for i, j in pairs:
        x0, x1 = faces.x_test[i], faces.x_test[j]
        for path in ("linear", "spherical"):
            rows.append(np.concatenate([x0[None], interpolate(frey, x0, x1, steps, path),
                                        x1[None]]))
    save_grid(np.concatenate(rows), FIGURES / "interpolate_frey.png", columns=steps + 2, scale=3)
    print("wrote interpolate_mnist.png and interpolate_frey.png")
    print(f"Frey Face test pairs: {pairs}")
    return {"mnist_pairs": [[3, 2], [0, 1], [4, 7]], "frey_pairs": pairs}


# ------------------------------------------------------------------------------------ augment


def augment_section(runs, steps=1000, per_example=10):
    data = mnist()
    vae, _ = load_run(Path(runs) / "mnist-vae-z20")
    x_test = data.x_test
    # A figure: 8 labelled digits and 10 samples of q(z|x) around each, at temperature 1.
    images, _, _ = augment(vae, data.x_train[:8], per_example=per_example, temperature=1.0)
    rows = [np.concatenate([data.x_train[k:k + 1], images[k * per_example:(k + 1) * per_example]])
            for k in range(8)]
    save_grid(np.concatenate(rows), FIGURES / "augment.png", columns=per_example + 1)

    def mlp():
        return classifier_from_encoder(vae, 10, copy_weights=False)

    def linear():
        return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                 keras.layers.Dense(10, activation="softmax")])

    result = {}
    for temperature in (None, 0.5, 1.0, 2.0):
        row = {}
        for name, make in (("softmax regression", linear), ("MLP 500 tanh", mlp)):
            accs = []
            for seed in SEEDS:
                idx = labelled_subset(data.y_train, 100, seed)
                x, y = data.x_train[idx], data.y_train[idx]
                if temperature is not None:
                    extra, extra_y, _ = augment(vae, x, y, per_example=per_example,
                                                temperature=temperature, seed=seed)
                    x, y = np.concatenate([x, extra]), np.concatenate([y, extra_y])
                keras.utils.set_random_seed(seed)
                classifier = make()
                fit_classifier(classifier, x, y, steps=steps, seed=seed)
                accs.append(accuracy(classifier, x_test, data.y_test))
            row[name] = mean_std(accs)
        key = "100 labelled digits" if temperature is None else \
            f"+ {per_example * 100} augmented (temperature {temperature:g})"
        result[key] = row
    names = ("softmax regression", "MLP 500 tanh")
    print(f"| training set | {' | '.join(names)} |")
    print("|---|---|---|")
    for key, row in result.items():
        print(f"| {key} | {' | '.join(fmt(row[n]) for n in names)} |")
    return result


# ----------------------------------------------------------------------------------- compress


def compress_section(runs):
    from PIL import Image

    data = mnist()
    x = data.x_test
    n = len(x)
    grey = np.round(x[..., 0] * 255).astype(np.uint8)
    originals = grey.astype(np.float32) / 255

    def mse(images):
        return float(np.mean((images[..., 0] - originals) ** 2))

    def psnr(error):
        return 10 * math.log10(1 / error)

    rows = []
    png = 0
    for image in grey:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG", optimize=True)
        png += len(buffer.getvalue())
    rows.append({"method": "PNG, each image (lossless)", "bytes": png / n, "mse": 0.0})
    rows.append({"method": "gzip -9 of all raw 8-bit pixels (lossless)",
                 "bytes": len(gzip.compress(grey.tobytes(), 9)) / n, "mse": 0.0})
    rows.append({"method": "raw 8-bit pixels", "bytes": 784.0, "mse": 0.0})
    figure = [x[:10]]
    for name, run in (("VAE", "mnist-vae-z20"), ("autoencoder", "mnist-ae-z20")):
        model, _ = load_run(Path(runs) / run)
        d = model.latent_dim
        rows.append({"method": f"{name}, float32 latent mean (unquantized)", "bytes": 4.0 * d,
                     "mse": mse(model.reconstruct(x).numpy())})
        for quantizer in ("uniform", "gaussian"):
            for bits in (1, 2, 3, 4, 6, 8):
                start = time.perf_counter()
                blob = compress(model, x, bits, quantizer)
                decoded = decompress(model, blob)
                rows.append({"method": f"{name}, {bits} bits x {d} dims, {quantizer}",
                             "bytes": len(blob) / n, "mse": mse(decoded),
                             "seconds": time.perf_counter() - start})
                if name == "VAE" and quantizer == "gaussian" and bits in (1, 2, 4, 8):
                    figure.append(decoded[:10])
    save_grid(np.concatenate(figure), FIGURES / "compression.png", columns=10)
    print("| method | bytes per image | MSE per pixel | PSNR (dB) |")
    print("|---|---|---|---|")
    for row in rows:
        p = "lossless" if row["mse"] == 0 else f"{psnr(row['mse']):.2f}"
        print(f"| {row['method']} | {row['bytes']:.2f} | {row['mse']:.5f} | {p} |")
    return rows


SECTIONS = {"scatter": scatter, "probe": probe, "finetune": finetune, "synthesis": synthesis,
            "augment": augment_section, "compress": compress_section}


def main(argv=None):
    global FIGURES, RESULTS, SEEDS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Checked below, not by choices=: argparse checks an empty or default list against the
    # choices as one value, and refuses it.
    parser.add_argument("sections", nargs="*", metavar="SECTION",
                        help=f"any of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--runs", default="runs", help="folder of the trained runs")
    parser.add_argument("--out", type=Path,
                        help="write the figures and applications.json here (default: "
                             "docs/figures and benchmarks/results)")
    parser.add_argument("--train-examples", type=int, help="default: all")
    parser.add_argument("--test-examples", type=int, help="default: all")
    parser.add_argument("--steps", type=int,
                        help="steps of every classifier fit (default: each section's own)")
    parser.add_argument("--seeds", type=int, default=len(SEEDS),
                        help=f"seeds per figure (default {len(SEEDS)})")
    args = parser.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"expected sections from {', '.join(SECTIONS)}, got {', '.join(unknown)}")
    if args.out:
        FIGURES, RESULTS = args.out, args.out / "applications.json"
    SEEDS = tuple(range(args.seeds))
    EXAMPLES.update({k: v for k, v in (("train_examples", args.train_examples),
                                       ("test_examples", args.test_examples)) if v})
    sections = dict(SECTIONS)
    if args.steps:
        for name in ("probe", "finetune", "augment"):
            sections[name] = functools.partial(SECTIONS[name], steps=args.steps)
    FIGURES.mkdir(parents=True, exist_ok=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for section in args.sections or SECTIONS:
        start = time.perf_counter()
        print(f"## {section}")
        results[section] = sections[section](args.runs)
        print(f"({time.perf_counter() - start:.0f} s)\n", flush=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
