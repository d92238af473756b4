"""What beta, KL warm-up and free bits do to the `make main` recipe on MNIST.

The recipe: 784-400-20 ReLU, Adam 1e-3, batch 128, dynamic binarization, 10 epochs, seed 0.
For beta in {0.5, 1, 2, 4}, each alone, with a KL warm-up over the first 2 epochs, and with free
bits of 0.5 nats per dimension, it prints the test ELBO (the true bound, beta = 1, whatever beta
trains), the active units and the KL per latent dimension of the final model; then it trains the
same recipe with a 2-D latent for beta 1 and 4 and draws the test set's latent means side by
side (``--figure PATH``). Results go to ``benchmarks/results/training_controls.json``.

    python benchmarks/training_controls.py [--epochs 10] [--figure docs/figures/beta_latents.png]
                                           [--betas 0.5 1 2 4] [--train-examples 60000]
                                           [--out DIR]

``--betas`` chooses the table's betas (the 2-D latents are always beta 1 and 4); ``--out DIR``
writes the results there instead.

Each configuration runs in its own process (``common.run_child``).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import ROOT, add_out, machine, print_table, run_child, write_results

RECIPE = {"model_config": {"hidden": 400, "activation": "relu", "latent_dim": 20},
          "data_config": {"name": "mnist", "binarize": "dynamic"},
          "batch_size": 128, "optimizer": "adam", "learning_rate": 1e-3, "seed": 0}
VARIANTS = {"none": {}, "warm-up": {"kl_warmup_epochs": 2}, "free bits": {"free_bits": 0.5}}


def child(beta, variant, epochs, latent_dim, train_examples):
    """Train one configuration; print a JSON line with its figures."""
    from tfvae.runs import RunDirectory
    from tfvae.training.pipeline import train

    controls = dict(VARIANTS[variant])
    warmup = controls.pop("kl_warmup_epochs", None)
    model_config = {**RECIPE["model_config"], "latent_dim": int(latent_dim), "beta": float(beta),
                    **controls}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        data_config = {**RECIPE["data_config"], "train_examples": int(train_examples)}
        train(run_dir, **{**RECIPE, "model_config": model_config, "data_config": data_config},
              epochs=int(epochs), kl_warmup_epochs=warmup, verbose=0)
        last = RunDirectory(run_dir).read_metrics()[-1]
        result = {"beta": float(beta), "variant": variant, "latent_dim": int(latent_dim),
                  "test_elbo": last["test_elbo"], "test_kl": last["test_kl"],
                  "active_units": int(last["active_units"]),
                  "kl_per_dimension": last["kl_per_dimension"],
                  "seconds": sum(r["seconds"] for r in RunDirectory(run_dir).read_metrics())}
        if int(latent_dim) == 2:
            from tfvae.data import load_dataset
            from tfvae.applications.features import latent_means
            from tfvae.runs import load_run

            model, _ = load_run(run_dir)
            data = load_dataset("mnist", seed=0)
            result["z_test"] = latent_means(model, data.x_test).tolist()
            result["y_test"] = data.y_test.tolist()
    print(json.dumps(result))


def draw(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 5))
    for ax, result in zip(np.atleast_1d(axes), results):
        z, y = np.asarray(result["z_test"]), np.asarray(result["y_test"])
        points = ax.scatter(z[:, 0], z[:, 1], c=y, cmap="tab10", s=2)
        ax.set_title(f"beta = {result['beta']:g}: test ELBO {result['test_elbo']:.1f}")
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
    fig.colorbar(points, ax=axes, label="digit")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--figure", default=str(ROOT / "docs" / "figures" / "beta_latents.png"))
    parser.add_argument("--betas", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--train-examples", type=int, default=60000)
    add_out(parser, "training_controls.json")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    script = str(Path(__file__).resolve())
    rows = [run_child([script, "--child", beta, variant, args.epochs, 20, args.train_examples])
            for variant in VARIANTS for beta in args.betas]
    print_table([{**r, "kl_per_dimension": " ".join(f"{v:.2f}" for v in r["kl_per_dimension"])}
                 for r in rows],
                ["variant", "beta", "test_elbo", "test_kl", "active_units", "seconds",
                 "kl_per_dimension"])
    latents = [run_child([script, "--child", beta, "none", args.epochs, 2, args.train_examples])
               for beta in (1.0, 4.0)]
    draw(latents, args.figure)
    for r in latents:
        print(f"2-D latent, beta {r['beta']:g}: test ELBO {r['test_elbo']:.2f}, "
              f"active units {r['active_units']}")
    write_results("training_controls", out=args.out, epochs=args.epochs, runs=rows,
                  latent_2d=[{k: v for k, v in r.items() if k not in ("z_test", "y_test")}
                             for r in latents])
    print(f"written: {args.figure}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:])
    else:
        main()
