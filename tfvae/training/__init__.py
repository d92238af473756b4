"""Training into a run directory: the ``fit`` pipeline (``pipeline``), the execution settings
(``execution``: XLA, precision, steps per call), ``tf.distribute`` (``distribute``), this
machine's figures (``machine``) and the TensorBoard summaries (``summaries``)."""

from tfvae.lazy import lazy_names

_NAMES = {name: "tfvae.training.pipeline" for name in (
    "train", "TrainingDiverged", "TrainingInterrupted", "RunCheckpoint", "make_optimizer",
    "epoch_line", "optimizer_steps")}
__all__ = list(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES, ("pipeline", "execution", "distribute",
                                                     "machine", "summaries"))
