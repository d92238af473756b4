"""The run directory's callback: what each finished epoch leaves in the run (its metrics row, its
log line, the checkpoints and state.json), and the stop at the first non-finite loss."""

import math
import shutil
import sys
import time

import keras
import numpy as np

from tfvae.evaluation.diagnostics import latent_diagnostics
from tfvae.interruption import deferred
from tfvae.storage import write_atomic


def epoch_line(row, epochs):
    """One plain line for a person or a log file: the epoch's bounds, time and speed."""
    def value(split):
        for name in ("elbo", "reconstruction"):
            if row.get(f"{split}_{name}") is not None:
                return f"{split} {name} {row[f'{split}_{name}']:.2f}"
        return None

    parts = [p for p in (value("train"), value("test")) if p]
    return (f"epoch {row['epoch']}/{epochs}: {', '.join(parts)}; {row['seconds']:.1f} s, "
            f"{row['examples_per_second']:,.0f} examples/s")


class RunCheckpoint(keras.callbacks.Callback):
    """At each epoch's end: a metrics row, its line in ``train.log`` (and on stdout when
    ``print_lines``), ``last.keras``, ``best.keras`` and ``state.json``.

    Stops training at the first non-finite loss, before anything of that epoch is written.
    """

    def __init__(self, run, num_train_examples, epochs, best_elbo=-math.inf, epochs_completed=0,
                 print_lines=False, diagnostic_images=None, diagnostic_labels=None):
        super().__init__()
        self.run = run
        # Test images for each epoch's latent diagnostics (active units, KL per dimension).
        self.diagnostic_images = diagnostic_images
        self.diagnostic_labels = diagnostic_labels
        self.epochs = epochs
        self.print_lines = print_lines
        self.epochs_done = epochs_completed
        self.num_train_examples = num_train_examples
        self.best_elbo = best_elbo
        self.diverged = False
        self.diagnostics = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()
        self.train_seconds = None
        self.diagnostics = {}

    def on_test_begin(self, logs=None):
        # Validation runs inside the epoch: time the training part alone.
        if self.train_seconds is None:
            self.train_seconds = time.perf_counter() - self.epoch_start

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            self.diverged = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.diverged or not np.isfinite(logs.get("loss", 0.0)):
            self.diverged = True
            self.model.stop_training = True
            self.run.write_state({**self.state(), "status": "diverged"})
            return
        seconds = self.train_seconds or (time.perf_counter() - self.epoch_start)
        row = {
            "epoch": epoch + 1,
            "train_elbo": logs.get("elbo"),
            "train_reconstruction": logs.get("reconstruction"),
            "train_kl": logs.get("kl"),
            "test_elbo": logs.get("val_elbo"),
            "test_reconstruction": logs.get("val_reconstruction"),
            "test_kl": logs.get("val_kl"),
            "seconds": round(seconds, 3),
            "examples_per_second": round(self.num_train_examples / seconds, 1),
        }
        if self.diagnostic_images is not None:
            # Kept for the epoch's other callbacks (the TensorBoard histogram): computed once.
            self.diagnostics = latent_diagnostics(self.model, self.diagnostic_images,
                                                  labels=self.diagnostic_labels)
            row["active_units"] = self.diagnostics["active_units"]
            row["kl_per_dimension"] = self.diagnostics["kl_per_dimension"]
        self.run.append_metrics(row)
        line = epoch_line(row, self.epochs)
        if row.get("active_units") == 0:
            line += "; no active latent unit: posterior collapse (the decoder ignores z)"
            hint = ""
            if getattr(self.model, "kl_warmup_steps", None) == 0:
                # A learned prior (the VampPrior above all) collapses before the decoder learns
                # to read z unless the KL comes in gradually (docs/likelihood.md measures it).
                hint = ("; a KL warm-up (--kl-warmup-epochs, or kl_warmup_steps) lets the "
                        "decoder learn to use z first")
            print(f"tfvae: warning: epoch {row['epoch']}: {line.split('; ')[-1]}{hint}",
                  file=sys.stderr)
        self.run.append_log(line)
        if self.print_lines:
            print(line, flush=True)
        # A stop signal waits until the checkpoints and state.json agree on this epoch.
        with deferred():
            self.run.checkpoint_dir.mkdir(exist_ok=True)
            last = write_atomic(self.run.checkpoint_path("last"), self.model.save)
            # A model without an ELBO (the autoencoder) names the metric that picks best.keras.
            key = self.model.checkpoint_metric
            test_elbo = logs.get(f"val_{key}", logs.get(key))
            if test_elbo is not None and test_elbo > self.best_elbo:
                self.best_elbo = float(test_elbo)
                write_atomic(self.run.checkpoint_path("best"),
                             lambda tmp: shutil.copyfile(last, tmp))
            self.epochs_done = epoch + 1
            self.run.write_state(self.state())

    def state(self):
        return {
            "epochs_completed": self.epochs_done,
            "best_test_elbo": self.best_elbo if math.isfinite(self.best_elbo) else None,
            "status": "running",
        }
