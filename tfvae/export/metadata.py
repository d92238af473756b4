"""``assets/tfvae.json``: what an export records about its model and the run it came from, for
people and programs that load the export without tfvae."""

import dataclasses
import datetime
import json
import math
from pathlib import Path

from tfvae.errors import InputError

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
    its data, test ELBO and anomaly threshold (``tfvae threshold``)."""
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
    threshold = run.read_threshold() if checkpoint == "model" else None
    if threshold is not None:  # calibrated for the final model only
        info["anomaly_threshold"] = dataclasses.asdict(threshold)
    return info


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=lambda o: repr(o)))


def _finite_or_none(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None
