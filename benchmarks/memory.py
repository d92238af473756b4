"""Resident memory of ``tfvae train`` epoch after epoch: it should stay flat.

Trains the 784-400-20 ReLU model (batch 128, Adam) on MNIST through ``tfvae.training.pipeline.train``
for ``--epochs`` epochs (20 by default), with validation, checkpoints and TensorBoard logs as the
command writes them, and prints the process's resident memory (RSS) at the end of every epoch,
then the growth from the end of epoch 2 (after compilation and the first checkpoint) to the end,
and per epoch over the second half of the run.

    python benchmarks/memory.py [--epochs 20] [--train-examples 60000] [--xla on|off] [--json]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--train-examples", type=int, default=60000)
    parser.add_argument("--xla", choices=["on", "off"], default="on")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import keras

    from tfvae.training.pipeline import train

    per_epoch = []

    class PrintRSS(keras.callbacks.Callback):
        # Runs after the run's own callbacks (callbacks run in order), so each figure includes the
        # epoch's checkpoint and metrics row.
        def on_epoch_end(self, epoch, logs=None):
            per_epoch.append(round(common.rss_mib(), 1))
            if not args.json:
                print(f"epoch {epoch + 1:3d}: RSS {per_epoch[-1]:8.1f} MiB", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        train(Path(tmp) / "run", model_config={"hidden": 400, "latent_dim": 20,
                                               "activation": "relu"},
              data_config={"name": "mnist", "train_examples": args.train_examples},
              epochs=args.epochs, batch_size=128, optimizer="adam", learning_rate=1e-3,
              verbose=0, jit_compile=args.xla == "on", callbacks=[PrintRSS()])
    base = per_epoch[min(1, len(per_epoch) - 1)]
    half = len(per_epoch) // 2
    report = {"rss_mib_per_epoch": per_epoch, "peak_rss_mib": round(common.peak_rss_mib(), 1),
              "growth_after_epoch_2_mib": round(per_epoch[-1] - base, 1),
              "growth_per_epoch_second_half_mib": round(
                  (per_epoch[-1] - per_epoch[half - 1]) / max(1, len(per_epoch) - half), 3),
              "machine": common.machine()}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"growth from the end of epoch {min(2, len(per_epoch))} to the end of epoch "
              f"{len(per_epoch)}: {report['growth_after_epoch_2_mib']:+.1f} MiB "
              f"({report['growth_per_epoch_second_half_mib']:+.3f} MiB per epoch over the second "
              f"half); peak {report['peak_rss_mib']} MiB")


if __name__ == "__main__":
    main()
