"""What a run writes to TensorBoard at each epoch's end: the scalars of its logs, and the images
and histogram that show what a VAE has learned.

In ``log_dir/train`` (the model itself):

- ``epoch_<name>`` scalars of the training logs;
- ``samples``: a grid of the means of p(x|z) for the same draws of z ~ p(z) each epoch;
- ``manifold``: the decoded 2-D latent space (latent dimension 2 only).

In ``log_dir/validation`` (what it does with test images):

- ``epoch_<name>`` scalars of the validation logs;
- ``reconstructions``: fixed test images (odd rows) above their reconstructions (models with an
  encoder);
- ``kl_per_dimension``: a histogram of the test images' KL(q(z_d|x) || p(z_d)) over the latent
  dimensions d (the values of metrics.csv's ``kl_per_dimension``): dimensions piled at 0 carry
  nothing.

In ``log_dir`` itself, once a run starts: the run's settings for the HParams dashboard, which
takes each run's final metrics from the scalars of its ``train`` and ``validation``.

The step is the epoch, counted from 0 as Keras's ``TensorBoard`` callback counts it; the last step
shows the final model.
"""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfvae import images
from tfvae.training.averaging import averaged_weights

# A small share of an epoch's time: one decoder call of each size.
SAMPLES = 64
SAMPLE_SEED = 0
RECONSTRUCTIONS = 8
MANIFOLD_GRID = 20


class EpochSummaries(keras.callbacks.Callback):
    """TensorBoard summaries of each epoch (see the module's docstring).

    ``test_images``: the images to reconstruct (the first ``RECONSTRUCTIONS`` are used). The
    epoch's ``logs`` give the scalars, and the histogram of ``kl_per_dimension`` where a
    callback before it put one there (``tfvae.training.callbacks.LatentDiagnostics``).

    Keras 3's ``TensorBoard`` callback also writes every batch's logs (whatever its
    ``update_freq``) and its memory grows with the number of steps; this one stays flat. It is
    the only writer of its directories: TensorBoard follows one events file per directory.

    ``hparams``: the run's settings by name (bool, number or text; None is left out) for
    TensorBoard's HParams dashboard, under the session name ``trial_id``. ``figures`` holds
    the last epoch's pictures by name, as uint8 images [H, W, C].
    """

    def __init__(self, log_dir, test_images=None, num_samples=SAMPLES, seed=SAMPLE_SEED,
                 test_labels=None, hparams=None, trial_id=None):
        super().__init__()
        self.log_dir = Path(log_dir)
        self.test_images = None if test_images is None else test_images[:RECONSTRUCTIONS]
        # A conditional model's: its reconstructions are given the labels.
        self.test_labels = None if test_labels is None else test_labels[:RECONSTRUCTIONS]
        self.num_samples = num_samples
        self.seed = seed
        self.hparams, self.trial_id = hparams, trial_id
        self.writers = {}
        self.figures = {}

    def on_train_begin(self, logs=None):
        self.writers = {split: tf.summary.create_file_writer(str(self.log_dir / split))
                        for split in ("train", "validation")}
        if self.hparams:
            self._write_hparams()

    def _write_hparams(self):
        from tensorboard.plugins.hparams import api as hp

        # A writer of its own, closed at once: log_dir's events file holds this summary alone.
        writer = tf.summary.create_file_writer(str(self.log_dir))
        with writer.as_default():
            hp.hparams({name: value for name, value in self.hparams.items() if value is not None},
                       trial_id=self.trial_id)
        writer.close()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for name, value in logs.items():
            split = "validation" if name.startswith("val_") else "train"
            if np.ndim(value) == 0:
                with self.writers[split].as_default(step=epoch):
                    tf.summary.scalar(f"epoch_{name.removeprefix('val_')}", value)
        # Images of a model whose loss turned NaN show nothing; training stops there.
        if np.isfinite(logs.get("loss", 0.0)):
            with averaged_weights(self.model):  # the weights the test bound is measured with
                self.write_images(epoch, logs.get("kl_per_dimension"))
        for writer in self.writers.values():
            writer.flush()

    def write_images(self, step, kl_per_dimension=None):
        if len(self.model.image_shape) == 3:  # a model of vectors has no picture to show
            self._write_pictures(step)
        self._write_kl_histogram(step, kl_per_dimension)

    def _write_pictures(self, step):
        model = self.model
        labels, columns = (images.class_rows(model, self.num_samples) if model.conditional
                           else (None, None))
        with self.writers["train"].as_default(step=step):
            self._image("samples", images.sample_images(model, self.num_samples,
                                                        seed=self.seed, labels=labels),
                        f"Means of p(x|z) for {self.num_samples} draws of z ~ p(z) (seed "
                        f"{self.seed}), the same draws at every step"
                        + (", a row per class." if model.conditional else "."), columns=columns)
            # A conditional model's manifold would be one per class: left to `tfvae sample`.
            if model.latent_dim == 2 and not model.conditional:
                self._image("manifold", images.manifold_images(model, MANIFOLD_GRID),
                            "Means of p(x|z) over a grid of z through the Gaussian inverse CDF "
                            "(z_1 to the right, z_2 upward).", columns=MANIFOLD_GRID)
        with self.writers["validation"].as_default(step=step):
            if self.test_images is not None and model.has_encoder:
                self._image("reconstructions",
                            images.reconstruction_grid(model, self.test_images,
                                                       labels=self.test_labels),
                            f"The first {len(self.test_images)} test images (odd rows) and the "
                            "means of p(x|z) at the means of q(z|x) (even rows).",
                            columns=RECONSTRUCTIONS)

    def _write_kl_histogram(self, step, kl):
        if kl is None:
            return
        with self.writers["validation"].as_default(step=step):
            tf.summary.histogram("kl_per_dimension", np.asarray(kl, np.float32),
                                 buckets=min(len(kl), 30),
                                 description="KL(q(z_d|x) || p(z_d)) of each latent dimension "
                                             "d, in nats, averaged over test images.")

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()

    def _image(self, name, pictures, description, columns=None):
        pixels = self.figures[name] = images.grid(pictures, columns)
        tf.summary.image(name, pixels[None], max_outputs=1, description=description)
