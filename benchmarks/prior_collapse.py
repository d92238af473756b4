"""Why the VampPrior collapses onto its prior without a KL warm-up (``docs/likelihood.md``).

The one-layer model of ``likelihood_table.py`` (784-200-200-50 tanh, VampPrior with K = 500
pseudo-inputs, Adam 1e-3, batch 100, dynamically binarized MNIST), in four measurements:

- ``warm-up``: the test bound, KL and active units of the first ``--epochs`` epochs with no
  warm-up, a 2-epoch and a 20-epoch one (``tfvae.train``, each in its own process);
- ``beta 0``: the VampPrior and the normal prior trained with the KL weighted 0 for 200 steps on
  20,000 images: their reconstructions, if the collapse is the KL's doing, are alike;
- ``scales``: the posterior's mean standard deviation and the KL over the first 100 steps on
  2,000 images, for the VampPrior and the normal prior.

    python benchmarks/prior_collapse.py [--epochs 3] [--json]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

MODEL = {"latent_dim": 50, "hidden": 200, "depth": 2, "activation": "tanh",
         "prior_components": 500}
WARMUPS = (0, 2, 20)


def warmup_child(warmup_epochs, epochs):
    from tfvae.runs import RunDirectory
    from tfvae.training import train

    with tempfile.TemporaryDirectory() as tmp:
        train(Path(tmp) / "run", model_config={**MODEL, "prior": "vamp"},
              data_config={"name": "mnist", "binarize": "dynamic", "test_examples": 1000},
              epochs=epochs, batch_size=100, optimizer="adam", learning_rate=1e-3, seed=0,
              kl_warmup_epochs=warmup_epochs or None, verbose=0)
        rows = RunDirectory(Path(tmp) / "run").read_metrics()
    print(json.dumps({"warmup_epochs": warmup_epochs, "epochs": [
        {"epoch": r["epoch"], "test_elbo": round(r["test_elbo"], 2),
         "test_kl": round(r["test_kl"], 3), "active_units": r["active_units"]} for r in rows]}))


def steps_child():
    """The ``beta 0`` and ``scales`` measurements."""
    import keras
    import tensorflow as tf

    import tfvae
    from tfvae.data import binarize, load_dataset

    x = binarize(load_dataset("mnist", binarize="none").x_train[:20000], 1)

    def model(prior, beta=1.0):
        keras.utils.set_random_seed(0)
        vae = tfvae.VAE(**MODEL, prior=prior, beta=beta)
        vae.compile(optimizer=keras.optimizers.Adam(1e-3))
        return vae

    out = {"beta_0_reconstruction_after_200_steps": {}, "scales": {}}
    for prior in ("vamp", "normal"):
        vae = model(prior, beta=0.0)
        history = vae.fit(x, epochs=1, batch_size=100, steps_per_epoch=200, shuffle=False,
                          verbose=0)
        out["beta_0_reconstruction_after_200_steps"][prior] = round(
            history.history["reconstruction"][-1], 2)
        vae, rows = model(prior), []
        for step in range(0, 101, 20):
            if step:
                vae.fit(x[:2000], epochs=1, batch_size=100, shuffle=False, verbose=0)
            terms = vae.bound_terms(x[:500], seed=1)
            rows.append({"step": step,
                         "kl": round(float(tf.reduce_mean(terms["kl"])), 3),
                         "mean_posterior_sd": round(float(tf.reduce_mean(
                             vae.encode(x[:500]).stddev())), 3)})
        out["scales"][prior] = rows
    print(json.dumps(out))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--warmup-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warmup_child is not None:
        return warmup_child(args.warmup_child, args.epochs)
    if args.steps_child:
        return steps_child()
    me = Path(__file__).resolve()
    report = {"machine": common.machine(),
              "warmup": [common.run_child([me, "--warmup-child", w, "--epochs", args.epochs])
                         for w in WARMUPS],
              **common.run_child([me, "--steps-child"])}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for run in report["warmup"]:
        print(f"warm-up {run['warmup_epochs']} epochs: " + "; ".join(
            f"epoch {r['epoch']} bound {r['test_elbo']} KL {r['test_kl']} active "
            f"{r['active_units']}" for r in run["epochs"]))
    print("KL weighted 0, reconstruction after 200 steps:",
          report["beta_0_reconstruction_after_200_steps"])
    for prior, rows in report["scales"].items():
        print(f"{prior}: " + "; ".join(f"step {r['step']} KL {r['kl']} sd {r['mean_posterior_sd']}"
                                       for r in rows))


if __name__ == "__main__":
    main()
