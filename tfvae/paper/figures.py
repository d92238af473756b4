"""The paper's figures as PNG files (matplotlib, Agg backend: no display needed).

- :func:`plot_fig2`: lower bound against training samples evaluated, AEVB versus wake-sleep.
- :func:`plot_fig3`: estimated log p(x) against training samples evaluated, with MCEM.
- :func:`plot_manifold` and :func:`plot_latent_means`: Figure 4's learned 2-D manifolds and the
  latent means of MNIST test digits.

Curves come as rows of dicts with the columns of ``tfvae.reproduce.CSV_COLUMNS``.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
import numpy as np  # noqa: E402

from tfvae.images import manifold_images, save_grid  # noqa: E402
from tfvae.storage import write_atomic  # noqa: E402

COLORS = {"aevb": "tab:red", "wake_sleep": "tab:green", "mcem": "tab:blue"}
LABELS = {"aevb": "AEVB", "wake_sleep": "Wake-Sleep", "mcem": "MCEM"}
DATASET_TITLES = {"mnist": "MNIST", "frey_face": "Frey Face"}


def _curve(rows, key):
    points = [(r["samples"], r[key]) for r in rows if r.get(key) not in (None, "")]
    points = [(float(s), float(v)) for s, v in points if np.isfinite(float(v))]
    return zip(*points) if points else ((), ())


def _set_ylim(ax, values):
    # The first points of a curve sit far below the rest; the paper's axes show the climb, not
    # the start: the lower limit leaves out the worst 5% of points.
    values = np.asarray([v for v in values if np.isfinite(v)])
    if len(values) < 2:
        return
    lo, hi = np.percentile(values, 5), values.max()
    span = max(hi - lo, 1.0)
    ax.set_ylim(lo - 0.05 * span, hi + 0.05 * span)


def _panels(n):
    cols = min(n, 5)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def _count_label(value, _position=None):
    """A count as a short label: 50k, 200k, 1.5M, 100M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _log_xticks(ax, xs, most=5):
    """Labelled ticks on a log x axis at 1, 2 and 5 x 10^k inside the data, thinned to ``most``.

    Matplotlib's own log ticks label the minor ticks of an axis spanning less than a decade
    (2x10^5, 3x10^5, 4x10^5 print on top of each other) and only the decades of a long one.
    """
    lo, hi = min(xs), max(xs)
    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    ticks = []
    for subs in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0 ** k for k in decades for m in subs if lo <= m * 10.0 ** k <= hi]
        if len(ticks) <= most:
            break
    ticks = ticks[::-(-len(ticks) // most)]  # every n-th decade on very long axes
    if len(ticks) < 2:  # a short axis between two round numbers: label its ends
        ticks = sorted({lo, hi, *ticks})
    ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(_count_label))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.tick_params(axis="x", labelsize=8)


def _lines(ax, rows, keys, methods):
    values, samples = [], []
    for method in methods:
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: float(r["samples"]))
        for key, style, split in ((keys[0], "-", "train"), (keys[1], "--", "test")):
            xs, ys = _curve(mine, key)
            if xs:
                ax.plot(xs, ys, style, color=COLORS[method], marker=".", markersize=3,
                        label=f"{LABELS[method]} ({split})")
                values += list(ys)
                samples += [x for x in xs if x > 0]
    ax.set_xscale("log")
    if samples:
        _log_xticks(ax, samples)
    ax.grid(True, alpha=0.3)
    _set_ylim(ax, values)


def _save(fig, path):
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)
    return Path(path)


def plot_fig2(rows, path):
    """Figure 2: one panel per (dataset, N_z), train (solid) and test (dashed) lower bound."""
    groups = sorted({(r["dataset"], int(r["latent_dim"])) for r in rows},
                    key=lambda g: (g[0] != "mnist", g[1]))
    fig, axes = _panels(max(len(groups), 1))
    for ax, (dataset, nz) in zip(axes, groups):
        mine = [r for r in rows if r["dataset"] == dataset and int(r["latent_dim"]) == nz]
        _lines(ax, mine, ("train_bound", "test_bound"), ("aevb", "wake_sleep"))
        ax.set_title(f"{DATASET_TITLES.get(dataset, dataset)}, $N_z$ = {nz}", fontsize=10)
        ax.set_xlabel("# training samples evaluated", fontsize=8)
        ax.set_ylabel("lower bound (nats)", fontsize=8)
    if groups and axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    return _save(fig, path)


def plot_fig3(rows, path):
    """Figure 3: one panel per N_train, train (solid) and test (dashed) estimated log p(x)."""
    sizes = sorted({int(r["n_train"]) for r in rows})
    fig, axes = _panels(max(len(sizes), 1))
    for ax, n in zip(axes, sizes):
        mine = [r for r in rows if int(r["n_train"]) == n]
        _lines(ax, mine, ("train_log_px", "test_log_px"), ("aevb", "wake_sleep", "mcem"))
        ax.set_title(f"$N_{{train}}$ = {n:,}", fontsize=10)
        ax.set_xlabel("# training samples evaluated", fontsize=8)
        ax.set_ylabel("marginal log-likelihood (nats)", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _save(fig, path)


def plot_manifold(model, path, grid=20):
    """Figure 4 (a, b): the means of p(x|z) over the latent grid, as one image."""
    return save_grid(manifold_images(model, grid), path, columns=grid, scale=2)


def plot_latent_means(model, x, labels, path, batch_size=1000):
    """The means of q(z|x) of ``x`` in the 2-D latent space, coloured by label."""
    means = np.concatenate([np.asarray(model.encode(x[i:i + batch_size]).mean())
                            for i in range(0, len(x), batch_size)])
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(means[:, 0], means[:, 1], c=labels, cmap="tab10", s=2, vmin=-0.5,
                        vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel("$z_1$ (mean of q(z|x))")
    ax.set_ylabel("$z_2$")
    ax.set_title("MNIST test set in the 2-D latent space")
    return _save(fig, path)
