"""Training a model into a run directory with ``fit``, in one direction: the settings (checked
before any data is read), the data, the model, the callbacks, the fit; with checkpoints, resume,
TensorBoard summaries (``tfvae.training.summaries``) and the execution settings (XLA, steps per
execution, mixed precision, ``tf.distribute``).

The directory's files belong to :class:`tfvae.runs.RunDirectory`; ``--resume`` continues a killed
run from ``checkpoints/last.keras`` with its optimizer state.
"""

import contextlib
import dataclasses
import math
import shutil
import sys
import tempfile

import keras
import tensorflow as tf

from tfvae import data as datasets
from tfvae import options
from tfvae.checks import check_bool, check_image_size, check_int, check_number
from tfvae.errors import InputError, arg, counted, render
from tfvae.interruption import Interrupted, stop_on_signals
from tfvae.data.validation import missing_allowed
from tfvae.layers.registries import BODIES
from tfvae.models import model_class
from tfvae.models.settings import model_settings
from tfvae.runs import MLFLOW_RUN_ID, RunDirectory, check_dataset_is_there
from tfvae.storage import write_atomic
from tfvae.training import distribute
from tfvae.training.averaging import AveragedEvaluation, averaging_optimizer
from tfvae.training.callbacks import (DivergenceStop, EarlyStop, EpochRecord,
                                      LatentDiagnostics, RunCheckpoints)
from tfvae.training.execution import (dtype_policy, global_dtype_policy, nearest_divisor,
                                      run_jit_compile)
from tfvae.training.optimizers import (optimizer_record, optimizer_steps, run_optimizer,
                                       stretch_schedule)
from tfvae.training.preparation import load_run_data, model_arguments
from tfvae.training.settings import (check_model_size_settings, check_resume_epochs,
                                     new_run_config, normalized_data_config, resumed_run_config)
from tfvae.training.stops import TrainingDiverged, TrainingInterrupted, diverged_message
from tfvae.training.summaries import EpochSummaries
from tfvae.training.tracking import MlflowTracking, flat_settings, run_tracking_uri

# Test images the latent diagnostics of each epoch are taken on: enough for the variance of the
# posterior means, a small share of the epoch's time.
_DIAGNOSTIC_EXAMPLES = 2000


@dataclasses.dataclass
class TrainResult:
    """What ``train`` leaves: the final ``model``, the ``run`` directory, the run's ``config``
    (as config.json holds it) and its last ``metrics`` row (None when nothing was trained)."""

    model: keras.Model
    run: RunDirectory
    config: dict
    metrics: dict = None


def train(run_dir, *, model=None, model_config=None, data_config=None, epochs=None,
          batch_size=None, optimizer=None, learning_rate=None, seed=None, resume=False,
          overwrite=False, verbose=1, strategy="default", mixed_precision=None,
          jit_compile="auto", steps_per_execution=options.SETTINGS["steps_per_execution"].default,
          kl_warmup_epochs=None, conditional=None, standardize=None, projector=None,
          learning_rate_schedule=None, learning_rate_warmup_epochs=None, clip_norm=None,
          skip_norm=None, ema=None, early_stopping_patience=None,
          xla_measure_seconds=options.SETTINGS["xla_measure_seconds"].default, mlflow=None,
          callbacks=()):
    """Train a model into ``run_dir``; returns a :class:`TrainResult` (the final model, the
    run's config and its last metrics row).

    ``model`` is a name from the model registry (``tfvae.models.MODELS``, "vae" by default);
    ``model_config``
    holds its constructor arguments (the image shape and likelihood come from the data when
    absent); ``data_config`` holds ``tfvae.data.load_dataset`` arguments. ``batch_size``,
    ``optimizer``, ``learning_rate`` and ``seed`` default to ``tfvae.options.TRAIN_DEFAULTS``.
    ``optimizer`` is a name (``tfvae.options.OPTIMIZERS``) or a ``keras.optimizers.Optimizer``
    object (config.json records its class name and config; its own learning rate and clipping
    then apply). ``learning_rate_schedule`` (``tfvae.options.LEARNING_RATE_SCHEDULES``,
    ``tfvae.training.schedules``) varies the rate with the epoch after a linear warm-up from 0
    over ``learning_rate_warmup_epochs``; ``clip_norm`` clips each step's gradients to that
    global norm. ``skip_norm`` skips the update of each step whose gradients' global norm is
    above it or not finite (``tfvae.models.steps``; on one device), counted in metrics.csv's
    ``skipped_steps`` (the steps of each epoch; a resume keeps the rows before it).
    ``ema`` (a decay in (0, 1)) keeps an exponential moving average of the weights
    (``tfvae.training.averaging``): each epoch's test bound, the diagnostics, best.keras and
    model.keras use the averaged weights, last.keras the weights as trained, from which a resume
    continues the average exactly. ``early_stopping_patience`` stops once the test bound has not
    improved for that many epochs: model.keras then holds the best epoch's weights and state.json
    records ``stopped_early`` (a resume of such a run has nothing to do).
    Every argument is checked before anything is written, so a bad one leaves ``run_dir`` as it
    was. ``epochs`` is the total (10 when not given). ``kl_warmup_epochs`` sets the VAE's
    ``kl_warmup_steps`` to that many epochs of steps. ``resume`` continues the run in
    ``run_dir``: only ``epochs`` may differ from what it was started with (config.json then
    records the new total); any other setting given must equal the run's. ``conditional``
    trains a conditional model (``num_classes`` from the dataset's labels) on (image, label)
    pairs. ``standardize`` ("auto", "on", "off"; auto: on for vectors) fits each feature's mean
    and standard deviation on the training split into the model (``feature_mean``,
    ``feature_scale``), which then takes and gives data as it is. ``verbose``: 0
    prints nothing, 1 Keras's progress bar and a line per epoch, 2 the lines alone (for logs).
    Raises ``TrainingDiverged`` if the loss turns NaN, ``TrainingInterrupted`` on SIGTERM or
    SIGINT (the run then resumes from its last finished epoch).

    Speed and scale (see ``docs/distributed.md``):

    - ``strategy``: a name from ``tfvae.options.STRATEGIES`` or a ``tf.distribute.Strategy``;
      the model is built and compiled under its scope and ``batch_size`` is the global batch.
    - ``mixed_precision``: None, "float16" or "bfloat16" compute with float32 variables and a
      float32 ELBO; float16 adds dynamic loss scaling. Kept for the run: a resume reuses it.
    - ``jit_compile``: True, False, or "auto": XLA-compile each step when training on one device
      (Keras cannot compile a multi-replica step whole) and the run is long enough for the
      compile time to be repaid on this machine. The first run of a model on a machine times
      its step both ways and keeps the figures (``tfvae.training.execution.xla_figures``), for
      at most ``xla_measure_seconds`` (checked between the timing's fits, so a compilation under
      way finishes first): past it, the run trains uncompiled. A run that would take less than
      that uncompiled is not timed compiled, and runs under ``XLA_NEVER_BELOW`` examples are
      never timed nor compiled. With ``verbose``, the timing is announced before it begins and
      the decision printed, as is each stage that can take a while (loading the data, building
      the model, tracing and compiling the first step).
    - ``steps_per_execution``: training steps per call into TensorFlow, rounded to the nearest
      divisor of the steps per epoch (by ratio) so that epochs end where an execution ends;
      one where more than one replica trains in sync (``distribute.one_step_per_execution``).

    TensorBoard (``tfvae/summaries.py``): each epoch's scalars, samples, reconstructions, the 2-D
    manifold and the KL of each latent dimension go to the run's ``tensorboard/``. ``projector``
    (default False; kept for the run, and a resume may turn it on) writes the test set's latent
    means for the Embedding Projector to ``tensorboard/projector/`` once training ends.

    Tracking: the settings (``tfvae.training.tracking.flat_settings``) and final metrics of
    every run go to TensorBoard's HParams dashboard. ``mlflow`` (a tracking URI such as
    ``http://127.0.0.1:5000``; needs ``tfvae[tracking]``) logs the run to an MLflow run, whose
    id config.json records: a resume continues it (``tfvae.training.tracking``). Kept for the
    run: a resume may start tracking, not change the URI.

    ``callbacks``: more Keras callbacks, called after the run's own at each event.
    """
    run = RunDirectory(run_dir)
    strategy_name = strategy if isinstance(strategy, str) else type(strategy).__name__
    # First: a multi-worker strategy must configure TensorFlow before anything else uses it.
    strategy = distribute.make_strategy(strategy)
    writer = distribute.is_writer(strategy)
    with contextlib.ExitStack() as held:
        if writer:
            # Under the lock: what the directory holds cannot change while it is checked.
            held.enter_context(run.writer(resume=resume, overwrite=overwrite))
        held.enter_context(stop_on_signals())
        # 1. The settings, checked before any data is read.
        # An optimizer object is recorded by its class name and config; the run trains a copy.
        given_optimizer = optimizer if isinstance(optimizer, keras.optimizers.Optimizer) else None
        train_settings = {"epochs": epochs, "batch_size": batch_size,
                          "optimizer": optimizer if given_optimizer is None
                          else optimizer_record(given_optimizer),
                          "learning_rate": learning_rate, "seed": seed,
                          "learning_rate_schedule": learning_rate_schedule,
                          "learning_rate_warmup_epochs": learning_rate_warmup_epochs,
                          "clip_norm": clip_norm, "skip_norm": skip_norm, "ema": ema,
                          "early_stopping_patience": early_stopping_patience,
                          "kl_warmup_epochs": kl_warmup_epochs, "conditional": conditional,
                          "standardize": standardize}
        data_config = normalized_data_config(data_config or {})
        if resume:
            config = resumed_run_config(run.read_config(), model, model_config or {}, data_config,
                                        train_settings, mixed_precision, projector)
            check_dataset_is_there(config["data"])
            mixed_precision = config["train"].get("mixed_precision")
        else:
            config = new_run_config(model or options.SETTINGS["model"].default,
                                    model_config or {}, data_config, train_settings,
                                    mixed_precision, projector)
        if (config["train"]["skip_norm"] is not None
                and strategy is not tf.distribute.get_strategy()):
            # The replicas would each decide on their own part of the gradient.
            raise InputError("skip_norm", "none under a tf.distribute strategy (steps are "
                             "skipped on one device)", repr(config["train"]["skip_norm"]))
        config["train"]["mlflow"] = run_tracking_uri(config["train"].get("mlflow"), mlflow)
        policy = dtype_policy(mixed_precision)
        if jit_compile not in ("auto", True, False):
            raise InputError("jit_compile", "auto, on (True) or off (False)", repr(jit_compile))
        check_int("steps_per_execution", steps_per_execution)
        cap = check_number("xla_measure_seconds", xla_measure_seconds, above=0)
        size = config["data"].get("image_size")
        if size is not None and config["model"].get("architecture") in BODIES:
            # Before reading a folder of images; an unknown name is the model's to refuse.
            BODIES.get(config["model"]["architecture"]).check_image_shape(size, "image_size")
        check_model_size_settings(config, size and (*check_image_size("image_size", size), 1))
        # Progress, for the stages that can take more than a few seconds.
        def say(line):
            if verbose and writer:
                print(render(line), flush=True)

        # 2. The data. NaN in it is a missing value from here on, where the run allows them.
        held.enter_context(missing_allowed(check_bool(
            "allow_missing", config["data"].get("allow_missing", False))))
        # The first line: where the data will be, said before it is read.
        with datasets.announcing(lambda why: say(f"tfvae: dataset {config['data']['name']}: "
                                                 f"{why}")):
            dataset = load_run_data(config, writer)
        say(f"tfvae: preparing the model for {len(dataset.x_train)} training examples")
        distribute.check_batch_size(strategy, config["train"]["batch_size"],
                                    len(dataset.x_train))
        full_batches = distribute.full_batches(strategy, len(dataset.x_train),
                                               config["train"]["batch_size"])
        steps = datasets.steps_per_epoch(len(dataset.x_train), config["train"]["batch_size"],
                                         full_batches)
        model_kwargs, train_labels, test_labels = model_arguments(config, dataset, steps)
        config["train"]["strategy"] = strategy_name
        # 3. The model, new or the run's last checkpoint, compiled.
        keras.utils.set_random_seed(config["train"]["seed"])
        with strategy.scope(), global_dtype_policy(policy):
            if resume:
                vae = run.load_model("last")
                # The checkpoint is written atomically and holds the optimizer's step count: the
                # epochs it completed follow from it, whatever else a kill left half-updated.
                initial_epoch = optimizer_steps(vae) // steps
                state = run.read_state()
                stopped = state.get("stopped_early")
                if (check_resume_epochs(config["train"]["epochs"], initial_epoch, state)
                        or stopped):
                    if verbose and writer:
                        print(render(f"tfvae: the run stopped early at epoch {stopped['epoch']} "
                                     f"(its best: epoch {stopped['best_epoch']}); nothing to do"
                                     if stopped else "tfvae: the run has finished its "
                                     f"{counted(initial_epoch, 'epoch')}; nothing to do (a larger "
                                     f"{arg('epochs')} trains more)"), file=sys.stderr)
                    # With a moving average, model.keras holds the averaged weights.
                    averaged = stopped or averaging_optimizer(vae) is not None
                    return TrainResult(run.load_model("model") if averaged else vae, run, config,
                                       _last_row(run))
                optimizer = given_optimizer = vae.optimizer  # the same object: its state goes on
                stretch_schedule(optimizer, config["train"]["epochs"])
                # Runs saved before binarization was part of the model's settings.
                vae.dynamic_binarization = model_kwargs.get("dynamic_binarization", False)
            else:
                vae = model_class(config["model_type"])(**model_kwargs,
                                                        seed=config["train"]["seed"])
                # config.json holds the settings as the model resolved them (the KL estimator
                # becomes "sampled" where a prior or posterior has no closed-form KL).
                config["model"] = _settings_of(vae)
                initial_epoch = 0
                optimizer = run_optimizer(config["train"], steps, given_optimizer)
            vae.skip_norm = config["train"]["skip_norm"]  # a training setting, not the model's
            per_execution = (1 if distribute.one_step_per_execution(strategy, dataset.x_train)
                             else nearest_divisor(steps, steps_per_execution))
            config["train"]["jit_compile"] = bool(run_jit_compile(
                jit_compile, resume, config, model_kwargs, dataset, train_labels, per_execution,
                given_optimizer, cap=cap, say=say,
                remaining=(config["train"]["epochs"] - initial_epoch) * len(dataset.x_train)))
            vae.compile(optimizer=optimizer, jit_compile=config["train"]["jit_compile"],
                        steps_per_execution=per_execution)
        if config["train"].get("projector") and len(vae.image_shape) != 3:
            raise InputError("projector", "a model of images (the projector shows each point's "
                             "picture)", f"a model of vectors of {vae.image_shape[0]} values")
        if config["train"].get("projector") and not vae.has_encoder:
            raise InputError("projector", "a model with an encoder (the projector shows the "
                             "means of q(z|x))", f"model type {config['model_type']!r}")
        tracking = None
        if writer and config["train"]["mlflow"]:
            # Before the run directory is written: a server that cannot be reached is refused.
            tracking = MlflowTracking(config["train"]["mlflow"], run, config.get(MLFLOW_RUN_ID),
                                      name=run.path.name)
            config[MLFLOW_RUN_ID] = tracking.run_id
        if writer and resume:
            run.remove_stale()
            run.write_config(config)
            run.truncate_metrics(initial_epoch)
        best, best_epoch = (_best_so_far(run, initial_epoch, vae.checkpoint_metric) if resume
                            else (-math.inf, 0))
        if writer and not resume:
            run.create(config)
        # Non-chief workers must save too (reading distributed variables is collective): elsewhere.
        out = run if writer else RunDirectory(tempfile.mkdtemp(prefix="tfvae-worker-"))
        verbose = verbose if writer else 0
        if verbose:
            print(f"tfvae: dataset {dataset.name}, binarization {dataset.binarize}, "
                  f"{len(dataset.x_train)} train / {len(dataset.x_test)} test examples; "
                  f"{strategy.num_replicas_in_sync} replica(s), "
                  f"XLA {'on' if vae.jit_compile else 'off'}, "
                  f"{vae.steps_per_execution} steps per execution"
                  + (f", mixed precision {mixed_precision}" if mixed_precision else ""))
        # 4. The callbacks, one concern each, in the order they run at an epoch's end.
        divergence = DivergenceStop()

        checkpoints = RunCheckpoints(out, best_elbo=best, epochs_completed=initial_epoch)
        patience = config["train"].get("early_stopping_patience")
        early_stop = [EarlyStop(patience, best, int(best_epoch))] if patience else []
        # The grey check compares images with the training images' mean (none with holes).
        mean_image = (datasets.mean_example(dataset.x_train) if len(dataset.image_shape) == 3
                      and not vae.allow_missing else None)
        test_head = datasets.head(dataset.x_test, _DIAGNOSTIC_EXAMPLES)
        diagnostics = ([LatentDiagnostics(test_head, None
                                          if test_labels is None
                                          else test_labels[:_DIAGNOSTIC_EXAMPLES],
                                          mean_image=mean_image, run=out,
                                          # batches of the training step's size: no larger
                                          # activations than training's own
                                          batch_size=config["train"]["batch_size"])]
                       if vae.has_encoder else [])
        summaries = EpochSummaries(out.tensorboard_dir,
                                   test_images=test_head if vae.has_encoder else None,
                                   test_labels=test_labels, hparams=flat_settings(config),
                                   trial_id=run.path.name)
        run_callbacks = [
            AveragedEvaluation(out),  # the test pass with the moving average, if any
            divergence, *diagnostics,
            EpochRecord(out, len(dataset.x_train), config["train"]["epochs"],
                        print_lines=verbose in (1, 2)),
            checkpoints,
            *early_stop,
            summaries,
            *([tracking] if tracking else []),
        ]
        # 5. The fit.
        say("tfvae: tracing the training step" + (" and compiling it with XLA (minutes for a "
            "large model)" if vae.jit_compile else "") + " before the first epoch")
        batch = config["train"]["batch_size"]
        status = "FAILED"  # the MLflow run's, unless the run finishes or a signal stops it
        try:
            try:
                vae.fit(
                    distribute.training_batches(strategy, dataset.x_train, batch_size=batch,
                                     seed=config["train"]["seed"], first_epoch=initial_epoch,
                                     drop_remainder=full_batches, labels=train_labels),
                    steps_per_epoch=steps,
                    shuffle=False,  # the stream shuffles
                    validation_data=distribute.test_batches(strategy, datasets.make_pipeline(
                        dataset.x_test, batch_size=batch, labels=test_labels,
                        drop_remainder=distribute.static_shapes(strategy)),
                        len(dataset.x_test), batch),
                    epochs=config["train"]["epochs"],
                    initial_epoch=initial_epoch,
                    verbose=1 if verbose == 1 else 0,
                    callbacks=[*run_callbacks, *callbacks],
                )
            except Interrupted as stop:
                # The epoch in progress is dropped: last.keras and state.json are those of the
                # last epoch that finished, from which a resume continues exactly.
                out.write_state(checkpoints.state("interrupted"))
                status = "KILLED"
                raise TrainingInterrupted(stop.signum, run.path, checkpoints.epochs_done,
                                          config["train"]["epochs"]) from None
            if divergence.diverged:
                out.write_state(checkpoints.state("diverged"))
                raise TrainingDiverged(diverged_message(run, checkpoints.epochs_done + 1))
            state = checkpoints.state("finished")
            if early_stop and early_stop[0].stopped:
                # best.keras holds the best epoch: the final model is it, weights and all.
                vae.set_weights(out.load_model("best").get_weights())
                state["stopped_early"] = early_stop[0].stopped
            write_atomic(out.checkpoint_path("model"), vae.save)
            if writer and config["train"].get("projector"):
                from tfvae.applications.projector import write_run_projector

                # The run owns tensorboard/: a resumed run replaces its projector.
                shown = write_run_projector(vae, run.path, run.projector_dir, overwrite=True,
                                            test_examples=config["data"].get("test_examples"),
                                            argument="projector")
                if verbose:
                    print(f"tfvae: projector: {shown['description']}, in {run.projector_dir}")
            out.write_state(state)
            status = "FINISHED"
        finally:
            if tracking:
                tracking.finish(status, summaries.figures)
            if not writer:
                shutil.rmtree(out.path, ignore_errors=True)
        return TrainResult(vae, run, config, _last_row(out) if writer else None)


def _settings_of(model):
    """The settings of ``model`` as config.json records them: those it takes, as it resolved
    them (its seed is the run's)."""
    resolved = model.get_config()
    return {key: resolved[key] for key in sorted(model_settings(type(model)) - {"seed"})
            if key in resolved}


def _best_so_far(run, epochs, metric):
    """(the best test ``metric``, its epoch) of a resumed run's first ``epochs`` epochs, by
    metrics.csv: every worker reads it, so all of them stop early at the same epoch."""
    bounds = [(row[f"test_{metric}"], row["epoch"]) for row in run.read_metrics()
              if row["epoch"] <= epochs and row.get(f"test_{metric}") is not None]
    return max(bounds, default=(-math.inf, 0))


def _last_row(run):
    rows = run.read_metrics() if run.metrics_path.is_file() else []
    return rows[-1] if rows else None
