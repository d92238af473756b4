"""The run directory's callbacks, one concern each, in the order ``train`` calls them at an
epoch's end:

- :class:`DivergenceStop`: stops at the first non-finite loss; the epoch leaves nothing behind.
- :class:`LatentDiagnostics`: the epoch's active units and KL per latent dimension, put in
  ``logs`` for the callbacks after it (the metrics row, the TensorBoard histogram); at the end of
  training, a warning when the test reconstructions are no better than the mean image.
- :class:`EpochRecord`: the epoch's metrics row and its line in ``train.log`` (and on stdout).
- :class:`RunCheckpoints`: ``last.keras``, ``best.keras`` and ``state.json``.

With a moving average of the weights (``tfvae.training.averaging``), the diagnostics and
best.keras are those of the averaged weights; last.keras holds the weights as trained.
- :class:`EarlyStop`: stops when the test bound has not improved for a number of epochs.
- :class:`TrialReport` (a hyperparameter search's, ``tfvae.training.search``): reports an epoch
  metric to the search's trial and stops the run when the trial's pruner says so.
"""

import math
import shutil
import sys
import time

import keras
import numpy as np

from tfvae.errors import arg, render
from tfvae.evaluation.diagnostics import (COLLAPSE, GREY, latent_diagnostics,
                                          reconstruction_errors)
from tfvae.interruption import deferred
from tfvae.models.steps import SKIPPED_STEPS
from tfvae.storage import write_atomic
from tfvae.training.averaging import averaged_weights, averaging_optimizer


def diverged(logs):
    """Whether an epoch's ``logs`` hold a non-finite loss."""
    return not np.isfinite((logs or {}).get("loss", 0.0))


def test_bound(model, logs):
    """The epoch's test bound that picks the best epoch: ``model.checkpoint_metric`` on the test
    set (a model without an ELBO, the autoencoder, names another), None when not measured."""
    key = model.checkpoint_metric
    return logs.get(f"val_{key}", logs.get(key))


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


class DivergenceStop(keras.callbacks.Callback):
    """Stops training at the first non-finite loss (``diverged`` then says so)."""

    diverged = False

    def on_train_batch_end(self, batch, logs=None):
        if diverged(logs):
            self.diverged = self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if diverged(logs):
            self.diverged = self.model.stop_training = True


class LatentDiagnostics(keras.callbacks.Callback):
    """The active units and the KL of each latent dimension on ``images`` (test images), as
    ``logs["active_units"]`` and ``logs["kl_per_dimension"]``: computed once an epoch for every
    callback after it.

    With ``mean_image`` (the training images' mean), once training ends: a warning on stderr
    (and in ``run``'s train.log) when the reconstructions of the first ``GREY_EXAMPLES`` images
    are no better than the mean image (``tfvae.evaluation.diagnostics.GREY``).
    """

    GREY_EXAMPLES = 500

    def __init__(self, images, labels=None, mean_image=None, run=None, batch_size=500):
        super().__init__()
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.mean_image, self.run = mean_image, run
        self.trained = False  # whether an epoch ended with finite weights

    def on_epoch_end(self, epoch, logs=None):
        self.trained = logs is not None and not diverged(logs)
        if not self.trained:
            return
        with averaged_weights(self.model):
            found = latent_diagnostics(self.model, self.images, batch_size=self.batch_size,
                                       labels=self.labels)
        logs["active_units"] = found["active_units"]
        if found["kl_per_dimension"] is not None:  # Gaussian q(z|x) and p(z) only
            logs["kl_per_dimension"] = found["kl_per_dimension"]

    def on_train_end(self, logs=None):
        if self.mean_image is None or not self.trained:
            return
        n = self.GREY_EXAMPLES
        with averaged_weights(self.model):
            errors = reconstruction_errors(self.model, self.images[:n], self.mean_image,
                                           batch_size=self.batch_size,
                                           labels=None if self.labels is None
                                           else self.labels[:n])
        if errors["grey"]:
            line = (f"warning: {GREY} (squared error {errors['reconstruction']:.4f} per value, "
                    f"the mean image's {errors['mean_image']:.4f})")
            if self.run is not None:
                self.run.append_log(line)
            print(render(f"tfvae: {line}"), file=sys.stderr)


class EpochRecord(keras.callbacks.Callback):
    """At each epoch's end: its metrics row and its line in ``train.log`` (and on stdout when
    ``print_lines``), with a warning when no latent unit is active."""

    def __init__(self, run, num_train_examples, epochs, print_lines=False):
        super().__init__()
        self.run, self.num_train_examples = run, num_train_examples
        self.epochs, self.print_lines = epochs, print_lines

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()
        self.train_seconds = None

    def on_test_begin(self, logs=None):
        # Validation runs inside the epoch: time the training part alone.
        if self.train_seconds is None:
            self.train_seconds = time.perf_counter() - self.epoch_start

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if diverged(logs):
            return
        seconds = self.train_seconds or (time.perf_counter() - self.epoch_start)
        row = {
            "epoch": epoch + 1,
            **{f"{split}_{name}": logs.get(f"{prefix}{name}")
               for split, prefix in (("train", ""), ("test", "val_"))
               for name in ("elbo", "reconstruction", "kl")},
            "seconds": round(seconds, 3),
            "examples_per_second": round(self.num_train_examples / seconds, 1),
        }
        row.update({key: logs[key] for key in ("active_units", "kl_per_dimension")
                    if key in logs})
        if SKIPPED_STEPS in logs:  # training with skip_norm
            row[SKIPPED_STEPS] = int(logs[SKIPPED_STEPS])
        self.run.append_metrics(row)
        line = epoch_line(row, self.epochs)
        if row.get(SKIPPED_STEPS):
            line += f"; {row[SKIPPED_STEPS]} steps skipped ({arg('skip_norm')})"
        if row.get("active_units") == 0:
            line += f"; {COLLAPSE}"
            self._warn_collapse(row["epoch"], COLLAPSE)
        self.run.append_log(line)
        if self.print_lines:
            print(line, flush=True)

    def _warn_collapse(self, epoch, what):
        hint = ""
        if getattr(self.model, "kl_warmup_steps", None) == 0:
            # A learned prior (the VampPrior above all) collapses before the decoder learns to
            # read z unless the KL comes in gradually (docs/likelihood.md measures it).
            hint = (f"; a KL warm-up ({arg('kl_warmup_epochs')}) lets the decoder learn to use "
                    "z first")
        print(render(f"tfvae: warning: epoch {epoch}: {what}{hint}"), file=sys.stderr)


class RunCheckpoints(keras.callbacks.Callback):
    """At each epoch's end: ``last.keras``, ``best.keras`` when the test bound is the best so far
    (``model.checkpoint_metric``), and ``state.json``, which a stop signal waits for."""

    def __init__(self, run, best_elbo=-math.inf, epochs_completed=0):
        super().__init__()
        self.run, self.best_elbo, self.epochs_done = run, best_elbo, epochs_completed

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if diverged(logs):
            return
        # A stop signal waits until the checkpoints and state.json agree on this epoch.
        with deferred():
            self.run.checkpoint_dir.mkdir(exist_ok=True)
            last = write_atomic(self.run.checkpoint_path("last"), self.model.save)
            bound = test_bound(self.model, logs)
            if bound is not None and bound > self.best_elbo:
                self.best_elbo = float(bound)
                if averaging_optimizer(self.model) is None:
                    write_atomic(self.run.checkpoint_path("best"),
                                 lambda tmp: shutil.copyfile(last, tmp))
                else:  # best.keras holds the averaged weights its bound was measured with
                    with averaged_weights(self.model):
                        write_atomic(self.run.checkpoint_path("best"), self.model.save)
            self.epochs_done = epoch + 1
            self.run.write_state(self.state())

    def state(self, status="running"):
        """state.json's content after the epochs done so far."""
        return {
            "epochs_completed": self.epochs_done,
            "best_test_elbo": self.best_elbo if math.isfinite(self.best_elbo) else None,
            "status": status,
        }


class EarlyStop(keras.callbacks.Callback):
    """Stops training once the test bound (:func:`test_bound`) has not improved on its best,
    ``best`` at epoch ``best_epoch``, for ``patience`` epochs; ``stopped`` then holds
    ``{"epoch": E, "best_epoch": B}`` for state.json. After :class:`RunCheckpoints`, so the
    epoch it stops at is checkpointed and best.keras holds epoch B."""

    def __init__(self, patience, best=-math.inf, best_epoch=0):
        super().__init__()
        self.patience, self.best, self.best_epoch = patience, best, best_epoch
        self.stopped = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        bound = test_bound(self.model, logs)
        if diverged(logs) or bound is None:
            return
        if bound > self.best:
            self.best, self.best_epoch = float(bound), epoch + 1
        elif epoch + 1 - self.best_epoch >= self.patience:
            self.stopped = {"epoch": epoch + 1, "best_epoch": self.best_epoch}
            self.model.stop_training = True


class TrialReport(keras.callbacks.Callback):
    """Reports the epoch's ``key`` from the logs (``val_elbo``: the test ELBO) to ``trial``, an
    Optuna trial or anything with its ``report(value, step)`` and ``should_prune()``, and stops
    training when the trial should be pruned; ``pruned_at`` then holds the epoch. It stops as
    :class:`EarlyStop` does rather than raising, so the epoch's checkpoints and state are
    written and the run directory stays a whole run (which a resume can continue)."""

    def __init__(self, trial, key="val_elbo"):
        super().__init__()
        self.trial, self.key = trial, key
        self.pruned_at = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.key)
        if diverged(logs) or value is None or not math.isfinite(float(value)):
            return
        self.trial.report(float(value), epoch + 1)
        # Stopping after the last epoch saves nothing and would leave a whole run called pruned.
        if epoch + 1 < self.params.get("epochs", math.inf) and self.trial.should_prune():
            self.pruned_at = epoch + 1
            self.model.stop_training = True
