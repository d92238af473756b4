"""Training into a run directory: the ``fit`` pipeline (``pipeline``), its settings
(``settings``), the data and model arguments it prepares from them (``preparation``), the run
directory's callbacks (``callbacks``), how a run stops short (``stops``), the optimizers
(``optimizers``), the execution settings (``execution``: XLA, precision, steps per call),
``tf.distribute`` (``distribute``), this machine's figures (``machine``), the TensorBoard
summaries (``summaries``), MLflow tracking (``tracking``) and the hyperparameter search over a
run's settings (``search``, its space file in ``search_space``)."""

from tfvae.lazy import lazy_names

_NAMES = {
    **{name: "tfvae.training.pipeline" for name in ("train", "TrainResult")},
    **{name: "tfvae.training.optimizers" for name in ("make_optimizer", "optimizer_steps")},
    **{name: "tfvae.training.callbacks" for name in ("DivergenceStop", "LatentDiagnostics",
                                                     "EpochRecord", "RunCheckpoints", "TrialReport",
                                                     "epoch_line")},
    **{name: "tfvae.training.stops" for name in ("TrainingDiverged", "TrainingInterrupted")},
    "MlflowTracking": "tfvae.training.tracking",
    **{name: "tfvae.training.search" for name in ("tune", "TuneResult")},
}
__all__ = list(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES, ("pipeline", "optimizers", "callbacks", "stops",
                                                     "settings", "execution", "distribute",
                                                     "machine", "summaries", "tracking", "search",
                                                     "search_space",
                                                     "preparation"))
