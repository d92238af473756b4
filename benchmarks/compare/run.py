"""tfvae against plain PyTorch and the keras.io-example way on one network, batch, optimizer and
data: 784-400-20 ReLU, batch 128, Adam 1e-3, MNIST's 60,000 training images.

The three run alternately, each in a fresh child process of this one, for ``--rounds`` rounds;
each figure is the run's best epoch after the first (which includes start-up and compilation).
Prints every figure, the medians, and tfvae's ratio to each (per round, and of the medians).

    python benchmarks/compare/run.py [--rounds 3] [--epochs 4] [--torch-python PYTHON] [--json]

PyTorch is optional: pass the interpreter of an environment that has it (``--torch-python``, or
``$TORCH_PYTHON``); without one that part is skipped.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import common  # noqa: E402


def has_torch(python):
    return subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0


def steady(rates):
    return max(rates[1:] or rates)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch_python = args.torch_python or sys.executable
    if not has_torch(torch_python):
        print(f"PyTorch is not importable by {torch_python}: skipping it (see --torch-python)",
              file=sys.stderr)
        torch_python = None

    contenders = {
        "tfvae": lambda: steady([common.run_child(
            [HERE.parent / "train_throughput.py", "--child", "relu", "on", args.epochs, 60000,
             "none"])["examples_per_second"]]),
        "keras.io way": lambda: steady(common.run_child(
            [HERE / "keras_io_vae.py", "--epochs", args.epochs])["examples_per_second"]),
    }
    if torch_python:
        contenders["pytorch"] = lambda: steady(common.run_child(
            [HERE / "torch_vae.py", "--epochs", args.epochs], python=torch_python)
            ["examples_per_second"])
    rounds = []
    for i in range(args.rounds):
        figures = {name: round(run()) for name, run in contenders.items()}
        rounds.append(figures)
        if not args.json:
            print(f"round {i + 1}: " + ", ".join(f"{k} {v:,} ex/s" for k, v in figures.items()),
                  flush=True)
    medians = {name: statistics.median(r[name] for r in rounds) for name in contenders}
    ratios = {name: {"of_medians": round(medians["tfvae"] / medians[name], 2),
                     "per_round": [round(r["tfvae"] / r[name], 2) for r in rounds]}
              for name in contenders if name != "tfvae"}
    report = {"rounds": rounds, "median_examples_per_second": medians,
              "tfvae_ratio": ratios, "epochs": args.epochs, "machine": common.machine()}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print("median: " + ", ".join(f"{k} {v:,.0f} ex/s" for k, v in medians.items()))
    for name, r in ratios.items():
        print(f"tfvae / {name}: {r['of_medians']} (per round {r['per_round']})")


if __name__ == "__main__":
    main()
