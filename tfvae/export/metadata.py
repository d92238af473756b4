"""``assets/tfvae.json``: what an export records about its model and the run it came from, for
people and programs that load the export without tfvae."""

import dataclasses
import datetime
import json
import math
from pathlib import Path

import numpy as np

from tfvae.checks import check_int, check_number
from tfvae.errors import InputError
from tfvae.evaluation.scores import DEFAULT_SAMPLES
from tfvae.runs import TABLE_COLUMNS

METADATA_FILE = "tfvae.json"


def read_metadata(export_dir):
    """The ``assets/tfvae.json`` of an export, as a dict."""
    path = Path(export_dir) / "assets" / METADATA_FILE
    if not path.is_file():
        raise InputError("export_dir", f"an export with assets/{METADATA_FILE}",
                         repr(str(export_dir)))
    return json.loads(path.read_text())


def model_metadata(model, num_samples, signatures, default_signature):
    """What ``assets/tfvae.json`` records of ``model``: its signatures (name -> {"inputs",
    "outputs"}), shapes, likelihood, settings and the versions it was exported with."""
    import keras
    import tensorflow as tf
    import tensorflow_probability as tfp

    import tfvae

    return {
        "format": "tfvae-savedmodel",
        "has_bound": model.has_bound,
        "conditional": model.conditional,
        "num_classes": model.num_classes,
        "signatures": signatures,
        "default_signature": default_signature,
        "image_shape": list(model.image_shape),
        "latent_dim": model.latent_dim,
        "likelihood": model.likelihood_name,
        "log_likelihood_num_samples": num_samples,
        "seed_rule": "row i draws its noise from seed[i] alone (tfvae.noise.CounterSeed)",
        "model_config": _jsonable(model.get_config()),
        "dataset": None,
        "binarization": None,
        "test_elbo": None,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"tfvae": tfvae.__version__, "tensorflow": tf.__version__,
                     "tensorflow_probability": tfp.__version__, "keras": keras.__version__},
    }


def run_metadata(run, checkpoint="model"):
    """What a run directory (a :class:`tfvae.runs.RunDirectory`) says about the exported model:
    its data, test ELBO, table columns and anomaly threshold (``tfvae threshold``)."""
    config = run.read_config()
    info = {"dataset": config["data"].get("name"),
            "binarization": config["data"].get("binarize"),
            "run_dir": str(run.path.resolve()), "checkpoint": checkpoint}
    state = run.read_state()
    rows = run.read_metrics()
    if checkpoint == "best":
        info["test_elbo"] = _finite_or_none(state.get("best_test_elbo"))
    elif rows:
        # model.keras and last.keras are the model after the last completed epoch.
        info["test_elbo"] = _finite_or_none(rows[-1].get("test_elbo"))
        info["epochs"] = int(rows[-1]["epoch"])
        info["active_units"] = rows[-1].get("active_units")
        info["kl_per_dimension"] = rows[-1].get("kl_per_dimension")
    if config.get(TABLE_COLUMNS):  # the columns a served model's score_rows takes
        info["table_columns"] = config[TABLE_COLUMNS]
    threshold = run.read_threshold() if checkpoint == "model" else None
    if threshold is not None:  # calibrated for the final model only
        info["anomaly_threshold"] = dataclasses.asdict(threshold)
    return info


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=lambda o: repr(o)))


def _finite_or_none(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


# Draws of z per row of the score signature when no threshold says otherwise: tfvae.score's
# default for the ELBO method.
DEFAULT_SCORE_SAMPLES = DEFAULT_SAMPLES["elbo"]


class ScoreSettings:
    """How the ``score`` signature scores: ``num_samples`` draws of z per row and, when given,
    the ``threshold`` above which a score is an anomaly (the ``anomaly`` output).

    The graph compares the float32 score with the largest float32 at or below ``threshold``, so
    ``anomaly`` is exactly ``score > threshold`` for every float32 score.
    """

    def __init__(self, num_samples=DEFAULT_SCORE_SAMPLES, threshold=None):
        self.num_samples = check_int("score num_samples", num_samples)
        self.threshold = (None if threshold is None
                          else check_number("anomaly threshold", threshold))

    @classmethod
    def from_metadata(cls, metadata=None):
        """The settings an export with ``metadata`` (what ``assets/tfvae.json`` records) scores
        by: its ``anomaly_threshold`` (a :class:`tfvae.evaluation.scores.Threshold` or its
        dict) when calibrated by the ELBO method, else 16 draws and no threshold."""
        record = (metadata or {}).get("anomaly_threshold")
        if record is None:
            return cls()
        if dataclasses.is_dataclass(record):
            record = dataclasses.asdict(record)
        if not isinstance(record, dict) or "threshold" not in record:
            raise InputError("metadata", "an anomaly_threshold with a threshold (as tfvae "
                             "threshold writes it)", repr(record))
        if record.get("method", "elbo") != "elbo":
            # Importance-sampled scores do not compare with the score signature's ELBO.
            return cls()
        return cls(record.get("num_samples") or DEFAULT_SCORE_SAMPLES, record["threshold"])

    def float32_threshold(self):
        """The largest float32 at or below the threshold: for a float32 score s,
        s > it exactly when s > the threshold."""
        below = np.float32(self.threshold)
        if float(below) > self.threshold:
            below = np.nextafter(below, np.float32(-np.inf))
        return below

    def outputs(self):
        return ("score", "anomaly") if self.threshold is not None else ("score",)

    def metadata(self):
        """What ``assets/tfvae.json`` records of the score signature."""
        return {"score_num_samples": self.num_samples}

    def __repr__(self):
        return f"ScoreSettings(num_samples={self.num_samples}, threshold={self.threshold!r})"
