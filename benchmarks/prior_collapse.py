"""Why the VampPrior collapses onto its prior without a KL warm-up (``docs/likelihood.md``).

The one-layer model of ``likelihood_table.py`` (784-200-200-50 tanh, VampPrior with K = 500
pseudo-inputs, Adam 1e-3, batch 100, dynamically binarized MNIST), in four measurements:

- ``warm-up``: the test bound, KL and active units of the first ``--epochs`` epochs with no
  warm-up, a 2-epoch and a 20-epoch one (``tfvae.train``, each in its own process);
- ``beta 0``: the VampPrior and the normal prior trained with the KL weighted 0 for 200 steps on
  20,000 images: their reconstructions, if the collapse is the KL's doing, are alike;
- ``scales``: the posterior's mean standard deviation and the KL over the first 100 steps on
  2,000 images, for the VampPrior and the normal prior.

    python benchmarks/prior_collapse.py [--epochs 3] [--train-examples 60000] [--json]

``--train-examples N`` trains the ``warm-up`` runs on the first N images, and the other two
measurements on at most N (each of their fits then has fewer steps).
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


def warmup_child(warmup_epochs, epochs, train_examples):
    from tfvae.runs import RunDirectory
    from tfvae.training.pipeline import train

    with tempfile.TemporaryDirectory() as tmp:
        train(Path(tmp) / "run", model_config={**MODEL, "prior": "vamp"},
              data_config={"name": "mnist", "binarize": "dynamic", "test_examples": 1000,
                           "train_examples": train_examples},
              epochs=epochs, batch_size=100, optimizer="adam", learning_rate=1e-3, seed=0,
              kl_warmup_epochs=warmup_epochs or None, verbose=0)
        rows = RunDirectory(Path(tmp) / "run").read_metrics()
    print(json.dumps({"warmup_epochs": warmup_epochs, "epochs": [
        {"epoch": int(r["epoch"]), "test_elbo": round(r["test_elbo"], 2),
         "test_kl": round(r["test_kl"], 3), "active_units": int(r["active_units"])}
        for r in rows]}))


def steps_child(train_examples):
    """The ``beta 0`` and ``scales`` measurements."""
    import keras
    import tensorflow as tf

    import tfvae
    from tfvae.data import binarize, load_dataset

    x = binarize(load_dataset("mnist", binarize="none").x_train[:min(20000, train_examples)], 1)

    def model(prior, beta=1.0):
        keras.utils.set_random_seed(0)
        vae = tfvae.VAE(**MODEL, prior=prior, beta=beta)
        vae.compile(optimizer=keras.optimizers.Adam(1e-3))
        return vae

    steps = min(200, len(x) // 100)
    out = {"beta_0_steps": steps, "beta_0_reconstruction": {}, "scales": {}}
    for prior in ("vamp", "normal"):
        vae = model(prior, beta=0.0)
        history = vae.fit(x, epochs=1, batch_size=100, steps_per_epoch=steps, shuffle=False,
                          verbose=0)
        out["beta_0_reconstruction"][prior] = round(
            history.history["reconstruction"][-1], 2)
        vae, rows = model(prior), []
        for point in range(6):
            if point:
                vae.fit(x[:2000], epochs=1, batch_size=100, shuffle=False, verbose=0)
            terms = vae.bound_terms(x[:500], seed=1)
            rows.append({"step": point * len(x[:2000]) // 100,
                         "kl": round(float(tf.reduce_mean(terms["kl"])), 3),
                         "mean_posterior_sd": round(float(tf.reduce_mean(
                             vae.encode(x[:500]).stddev())), 3)})
        out["scales"][prior] = rows
    print(json.dumps(out))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-examples", type=int, default=60000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--warmup-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warmup_child is not None:
        return warmup_child(args.warmup_child, args.epochs, args.train_examples)
    if args.steps_child:
        return steps_child(args.train_examples)
    me = Path(__file__).resolve()
    report = {"machine": common.machine(),
              "warmup": [common.run_child([me, "--warmup-child", w, "--epochs", args.epochs,
                                           "--train-examples", args.train_examples])
                         for w in WARMUPS],
              **common.run_child([me, "--steps-child", "--train-examples", args.train_examples])}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for run in report["warmup"]:
        print(f"warm-up {run['warmup_epochs']} epochs: " + "; ".join(
            f"epoch {r['epoch']} bound {r['test_elbo']} KL {r['test_kl']} active "
            f"{r['active_units']}" for r in run["epochs"]))
    print(f"KL weighted 0, reconstruction after {report['beta_0_steps']} steps:",
          report["beta_0_reconstruction"])
    for prior, rows in report["scales"].items():
        print(f"{prior}: " + "; ".join(f"step {r['step']} KL {r['kl']} sd {r['mean_posterior_sd']}"
                                       for r in rows))


if __name__ == "__main__":
    main()
