"""tfvae against its peers on one network, batch, optimizer and data: 784-400-20 ReLU, batch
128, Adam 1e-3, MNIST's 60,000 training images; and the importance-sampled log p(x) (k = 5000)
against the same estimator in plain PyTorch.

Training: tfvae, plain PyTorch (``torch_vae.py``), the keras.io-example way (``keras_io_vae.py``)
and Pythae (``pythae_vae.py``, ``pythae==0.1.2`` with its own trainer; its loss is binary
cross-entropy on a binarization fixed once, where the others draw a fresh one per batch) run
alternately, each in a fresh child process, for ``--rounds`` rounds; each figure is the run's
best epoch after the first (which includes start-up and compilation). Log p(x): tfvae
(``benchmarks/log_likelihood.py``) and ``torch_log_likelihood.py`` alternately, on the paper's
784-500-20 tanh model over ``--likelihood-examples`` test images, first batch left out.
Prints every figure, the medians and tfvae's ratio to each (per round, and of the medians).

``--body resnet``: training alone, tfvae's residual body (``train_throughput.py``'s ``resnet``
configuration: hidden 32, depth 1, GELU, latent_dim 32, the discretized logistic with one
component, batch 64, Adam 1e-3) against the same network in plain PyTorch
(``torch_resnet_vae.py``, whose parameter count is checked to be tfvae's), alternately as
above, on ``--train-examples`` generated 32x32 RGB images (``generated_images.py``'s
gradients under discs and boxes) that both read from one file.

    python benchmarks/compare/run.py [--body mlp] [--rounds 3] [--epochs 4]
                                     [--train-examples 60000] [--likelihood-examples 1000]
                                     [--likelihood-samples 5000] [--torch-python PYTHON] [--json]
    python benchmarks/compare/run.py --body resnet [--rounds 3] [--epochs 4]
                                     [--train-examples 60000] [--torch-python PYTHON] [--json]

PyTorch and Pythae are optional, and never tfvae's dependencies: they are looked for in the
interpreter given by ``--torch-python`` (or ``$TORCH_PYTHON``; default: this one), and the
peers it lacks are named on one line and skipped.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import common  # noqa: E402

# Images held out as the resnet run's test split, which tfvae evaluates after each epoch's
# training (outside its figure): few, so that it costs little time.
TEST_IMAGES = 64


def importable(python, module):
    try:
        return subprocess.run([python, "-c", f"import {module}"],
                              capture_output=True).returncode == 0
    except OSError:  # no such interpreter
        return False


def steady(rates):
    return max(rates[1:] or rates)


def alternate(contenders, rounds, unit, quiet):
    """Run each contender once per round, in turn; the figures [round][name] and the medians."""
    figures = []
    for i in range(rounds):
        figures.append({name: run() for name, run in contenders.items()})
        if not quiet:
            print(f"round {i + 1}: " + ", ".join(f"{k} {v:,.4g} {unit}"
                                                 for k, v in figures[-1].items()), flush=True)
    medians = {name: statistics.median(r[name] for r in figures) for name in contenders}
    return figures, medians


def ratios(figures, medians, higher_is_better):
    """tfvae's lead over each other contender: >1 means tfvae is faster."""
    def lead(ours, theirs):
        return round(ours / theirs if higher_is_better else theirs / ours, 2)

    return {name: {"of_medians": lead(medians["tfvae"], medians[name]),
                   "per_round": [lead(r["tfvae"], r[name]) for r in figures]}
            for name in medians if name != "tfvae"}


def mlp_training(args, torch_python, peers):
    """The contenders of ``--body mlp``: tfvae, the keras.io way and the ``peers`` found."""
    sizes = ["--epochs", args.epochs, "--train-examples", args.train_examples]

    def rate(script, python=None):
        return lambda: round(steady(common.run_child(
            [script, *sizes], python=python)["examples_per_second"]))

    training = {
        # The child's own figure is already the best epoch after the first.
        "tfvae": lambda: round(common.run_child(
            [HERE.parent / "train_throughput.py", "--child", "relu", "on", args.epochs,
             args.train_examples, "none", "default"])["examples_per_second"]),
        "keras.io way": rate(HERE / "keras_io_vae.py"),
    }
    if peers["PyTorch"]:
        training["pytorch"] = rate(HERE / "torch_vae.py", torch_python)
    if peers["Pythae"]:
        training["pythae"] = rate(HERE / "pythae_vae.py", torch_python)
    return training


def write_images(path, n):
    """``n`` generated 32x32 RGB images as ``x_train`` (uint8 [n, 32, 32, 3]) and
    ``TEST_IMAGES`` more as ``x_test``, in the .npz ``path``: a file with both splits, so that
    tfvae trains on all n, as PyTorch does, rather than holding out the last 10%."""
    import numpy as np
    from generated_images import image

    images = np.stack([np.asarray(image(i, 32)) for i in range(n + TEST_IMAGES)])
    np.savez(path, x_train=images[:n], x_test=images[n:])


def resnet_training(args, torch_python, with_torch, data):
    """The contenders of ``--body resnet`` on the images written to ``data``, and each one's
    last child result (refused when their parameter counts differ)."""
    write_images(data, args.train_examples)
    results = {}

    def child(name, argv, python=None):
        result = results[name] = common.run_child(argv, python=python)
        parameters = {n: r["parameters"] for n, r in results.items()}
        if len(set(parameters.values())) > 1:
            raise RuntimeError(f"not the same network: parameters {parameters}")
        return result

    # XLA as tfvae train decides by default ("auto"): on where this machine's timing of the
    # step says compiling pays for the run's examples (timed once per machine and model, before
    # the first epoch, so outside the figures), as a user of tfvae train gets it.
    contenders = {"tfvae": lambda: round(child("tfvae", [
        HERE.parent / "train_throughput.py", "--child", "resnet", "auto", args.epochs,
        args.train_examples, "none", "default", "--data", data])["examples_per_second"])}
    if with_torch:
        contenders["pytorch"] = lambda: round(steady(child("pytorch", [
            HERE / "torch_resnet_vae.py", "--data", data, "--epochs", args.epochs],
            torch_python)["examples_per_second"]))
    return contenders, results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--body", choices=["mlp", "resnet"], default="mlp",
                        help="mlp: the ReLU MLP on MNIST against every peer, and log p(x); "
                             "resnet: the residual body against plain PyTorch, training only")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-examples", type=int, default=60000,
                        help="training images each contender trains on (MNIST's, or as many "
                             "generated images for --body resnet)")
    parser.add_argument("--likelihood-examples", type=int, default=1000,
                        help="test images for the log p(x) part (0 skips it; --body mlp only)")
    parser.add_argument("--likelihood-samples", type=int, default=5000, help="k of log p(x)")
    parser.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON"),
                        help="an interpreter with torch (and pythae) installed (default: "
                             "$TORCH_PYTHON, else this one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch_python = args.torch_python or sys.executable
    resnet = args.body == "resnet"
    wanted = {"PyTorch": "torch"} if resnet else {"PyTorch": "torch", "Pythae": "pythae"}
    peers = {name: importable(torch_python, module) for name, module in wanted.items()}
    if "Pythae" in peers:
        peers["Pythae"] = peers["Pythae"] and peers["PyTorch"]
    missing = [name for name, found in peers.items() if not found]
    if missing:
        print(f"skipping {' and '.join(missing)}: not importable by {torch_python} (pass "
              f"--torch-python or $TORCH_PYTHON, an interpreter with torch"
              f"{'' if resnet else ' and pythae==0.1.2'})", file=sys.stderr)
    report = {"machine": common.machine(), "body": args.body, "epochs": args.epochs,
              "train_examples": args.train_examples, "skipped": missing}
    if not args.json:
        print(f"training{' the residual body' if resnet else ''}, examples/s "
              f"({report['machine']['cpu']}):")
    with tempfile.TemporaryDirectory() as tmp:
        if resnet:
            training, results = resnet_training(args, torch_python, peers["PyTorch"],
                                                Path(tmp) / "images.npz")
        else:
            training = mlp_training(args, torch_python, peers)
        figures, medians = alternate(training, args.rounds, "ex/s", args.json)
    report["training"] = {"rounds": figures, "median_examples_per_second": medians,
                          "tfvae_ratio": ratios(figures, medians, higher_is_better=True)}
    if resnet:
        report["parameters"] = {name: r["parameters"] for name, r in results.items()}
        report["tfvae_xla"] = results["tfvae"]["compiled"]
        if not args.json:
            counts = ", ".join(f"{name} {n:,}" for name, n in report["parameters"].items())
            print(f"parameters: {counts}; tfvae's XLA {'on' if report['tfvae_xla'] else 'off'}")
    if args.likelihood_examples and not resnet:
        n = ["--examples", args.likelihood_examples, "--samples", args.likelihood_samples]
        likelihood = {"tfvae": lambda: common.run_child(
            [HERE.parent / "log_likelihood.py", *n, "--json"])["seconds"]}
        if peers["PyTorch"]:
            likelihood["pytorch"] = lambda: common.run_child(
                [HERE / "torch_log_likelihood.py", *n], python=torch_python)["seconds"]
        if not args.json:
            print(f"log p(x), k = {args.likelihood_samples}, {args.likelihood_examples} test "
                  f"images, seconds:")
        figures, medians = alternate(likelihood, args.rounds, "s", args.json)
        report["log_likelihood"] = {"examples": args.likelihood_examples,
                                    "samples": args.likelihood_samples, "rounds": figures,
                                    "median_seconds": medians,
                                    "tfvae_ratio": ratios(figures, medians,
                                                          higher_is_better=False)}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for part in ("training", "log_likelihood"):
        for name, r in report.get(part, {}).get("tfvae_ratio", {}).items():
            print(f"{part}: tfvae / {name} speed: {r['of_medians']} (per round "
                  f"{r['per_round']})")


if __name__ == "__main__":
    main()
