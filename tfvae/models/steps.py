"""What every model's training step shares: its batches, the loss it differentiates, the update
(skipped when the gradient's global norm is above ``skip_norm``) and the metrics it reports.

A step whose update is skipped leaves the weights, the optimizer's slots and its moving average
(``ema``) as they were (a skipped first step starts the average at the weights); the optimizer's
step count still advances, so the epoch a checkpoint is at, the learning-rate schedule and the KL
warm-up go on counting steps taken, skipped or not.
"""

import keras
import tensorflow as tf

from tfvae.errors import InputError

# The metric that counts the steps of an epoch skipped by ``skip_norm``.
SKIPPED_STEPS = "skipped_steps"


class TrainingStep:
    """Mixed into :class:`tfvae.models.base.LatentVariableModel`, whose ``__init__`` calls
    :meth:`init_training_step` once its ``trackers`` exist.

    ``skip_norm``: None (every update applied), or the global gradient norm above which (or when
    not finite) a step's update is skipped and counted in the ``skipped_steps`` metric. A
    training setting, not part of the model's config: ``train`` sets it before compiling, on a
    new model and on a resumed one alike.
    """

    def init_training_step(self):
        self.skip_norm = None
        # Like the trackers, a metric: reset by fit at each epoch, not saved with the model.
        self.skip_tracker = keras.metrics.Sum(name=SKIPPED_STEPS)

    def make_train_function(self, force=False):
        if self.built and self.optimizer is not None and not self.optimizer.built:
            # Keras would build it inside the first trace of the training step, and a variable
            # created in a trace makes tf.function trace the step a second time.
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)
        return super().make_train_function(force)

    @property
    def metrics(self):
        return list(self.trackers) + ([self.skip_tracker] if self.skip_norm is not None else [])

    @staticmethod
    def batch_inputs(data):
        """x [B, *E] as float32 from what ``fit`` passes: x alone or (x, y[, sample_weight])."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return tf.cast(x, tf.float32)

    def batch_labels(self, data):
        """A conditional model's labels y [B] from what ``fit`` passes, (x, y[, sample_weight]);
        None for an unconditional model, which ignores y."""
        if not self.conditional:
            return None
        _, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise InputError("y", "(x, y) batches of images and class labels for a conditional "
                             f"model (num_classes={self.num_classes})", "images alone")
        return tf.cast(tf.reshape(y, [-1]), tf.int32)

    def _weight_penalty(self, variables=None):
        """A N(0, 1/weight_decay) prior on the weights: MAP adds weight_decay/2 * ||w||^2."""
        if not self.weight_decay:
            return 0.0
        variables = self.trainable_variables if variables is None else variables
        return 0.5 * self.weight_decay * tf.add_n([tf.reduce_sum(tf.square(v))
                                                   for v in variables])

    def scaled_loss(self, loss):
        """What a ``train_step`` differentiates for a replica's mean ``loss``.

        fit() under tf.distribute sums the replicas' gradients: each replica's mean loss is
        scaled by 1/replicas so the sum is the global mean. ``scale_loss`` is the identity
        unless the optimizer is a LossScaleOptimizer (mixed precision), whose ``apply``
        unscales the gradients.
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return self.optimizer.scale_loss(loss / replicas)

    def apply_update(self, grads, variables):
        """The optimizer's update of ``variables`` by ``grads``, or none when ``skip_norm`` is set
        and their global norm is above it or not finite (the step is counted in
        ``skipped_steps``)."""
        optimizer = self.optimizer
        if self.skip_norm is None:
            optimizer.apply(grads, variables)
            return
        if not optimizer.built:
            # Its slots are created here: a variable cannot be created inside a branch of cond.
            optimizer.build(variables)
        norm = tf.linalg.global_norm([g for g in grads if g is not None])
        # A LossScaleOptimizer's gradients are scaled, and it skips non-finite ones itself
        # (lowering its scale); any other optimizer's non-finite step is skipped here.
        scale = getattr(optimizer, "dynamic_scale", None)
        threshold = tf.constant(self.skip_norm, norm.dtype)
        if scale is None:
            # Not "not norm <= threshold": Grappler rewrites it as norm > threshold, False for NaN.
            skip = tf.logical_or(norm > threshold, tf.logical_not(tf.math.is_finite(norm)))
        else:
            skip = norm / tf.cast(scale, norm.dtype) > threshold

        def update():
            optimizer.apply(grads, variables)

        def keep():
            averaging = getattr(optimizer, "inner_optimizer", optimizer)
            if getattr(averaging, "use_ema", False):
                # Keras starts the average at the first step's weights; a skipped first step
                # starts it at the weights it leaves, not at the zeros it was built with.
                first = tf.equal(optimizer.iterations, 0)
                for weight, average in zip(averaging._trainable_variables,
                                           averaging._model_variables_moving_average):
                    average.assign(tf.where(first, weight, average))
            optimizer.iterations.assign_add(1)

        tf.cond(skip, keep, update)
        self.skip_tracker.update_state(tf.cast(skip, tf.float32))

    def update_metrics(self, values):
        """Update each tracker from ``values`` (name -> per-example [B] or a scalar; a tracker
        without one is left out of this step's logs) and return the logs (with ``skipped_steps`` so far when ``skip_norm`` is set).

        A scalar ``loss`` is weighted by the batch size of the other values, as the per-example
        trackers are: the epoch's loss is then the mean over examples, whatever the batch sizes
        and however batches are split on replicas.
        """
        per_example = [v for name, v in values.items() if name != "loss"]
        # A step reports what it computes: a test pass of wake-sleep has no wake or sleep phase.
        absent = {tracker.name for tracker in self.trackers if tracker.name not in values}
        for tracker in self.trackers:
            if tracker.name in absent:
                continue
            value = values[tracker.name]
            if tracker.name == "loss" and per_example:
                weight = tf.cast(tf.shape(per_example[0])[0], value.dtype)
                tracker.update_state(value, sample_weight=weight)
            else:
                tracker.update_state(value)
        logs = {m.name: m.result() for m in self.metrics if m.name not in absent}
        if _multi_worker():
            # Keras 3 reduces per-step logs across workers with strategy.reduce(MEAN, axis=0),
            # which fails on scalars (tensorflow/tensorflow#72388): give them a batch axis. Epoch
            # logs are read from the metrics themselves, aggregated over all workers.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs


def _multi_worker():
    strategy = tf.distribute.get_strategy()
    # The same test Keras's trainer makes before its cross-worker reduction.
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())
