"""TF Serving's versioned layout, ``BASE/NAME/VERSION``: a run exported into it
(:func:`export_run`), the next version's number, and a staged SavedModel moved into its version
in one step that never replaces one."""

import errno
import json
import os
from pathlib import Path

from tfvae.checks import MAX_INT64, check_int, check_name
from tfvae.errors import InputError
from tfvae.export.formats import export_model
from tfvae.export.metadata import METADATA_FILE, run_metadata
from tfvae.options import EXPORT_LOG_LIKELIHOOD_SAMPLES as DEFAULT_NUM_SAMPLES
from tfvae.runs import RunDirectory
from tfvae.storage import check_writable_dir, rename_no_replace


def check_new(path, argument):
    if path.exists():
        raise InputError(argument, "a version that does not exist yet (versions are never "
                         "overwritten)", f"{str(path)!r}, which exists")


def next_version(model_dir):
    """One more than the highest integer-named version in ``model_dir`` (1 if none)."""
    model_dir = Path(model_dir)
    versions = [int(p.name) for p in model_dir.iterdir()
                if p.is_dir() and p.name.isdigit()] if model_dir.is_dir() else []
    return max(versions, default=0) + 1


def write_error(exc, path):
    """What TensorFlow could not write, as the OSError the operating system gave it."""
    message = (exc.message or str(exc)).strip().splitlines()[0]
    for code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        if os.strerror(code) in message:
            return OSError(code, os.strerror(code), str(path))
    return OSError(errno.EIO, message, str(path))


def move_in_version(saved, path, next_free_version):
    """Rename the staged SavedModel to ``path`` in one step that never replaces a version, even
    one another export wrote since the checks; with ``next_free_version`` take the next number
    instead. Returns the version directory written."""
    while True:
        try:
            return rename_no_replace(saved, path)
        except FileExistsError:
            if not next_free_version:
                raise InputError("path", "a version that does not exist yet (versions are "
                                 "never overwritten)", f"{str(path)!r}, which another export "
                                 "wrote while this one ran") from None
        path = path.parent / str(next_version(path.parent))
        info_path = saved / "assets" / METADATA_FILE
        info = json.loads(info_path.read_text())
        if "version" in info:
            info["version"] = int(path.name)
            info_path.write_text(json.dumps(info, indent=2) + "\n")


def export_run(run_dir, model_name, *, base_dir="export", version=None,
               num_samples=DEFAULT_NUM_SAMPLES, checkpoint="model", format="savedmodel"):
    """Export a run directory's model to ``base_dir/model_name/version`` in ``format`` (one of
    TF Serving's versioned layout: "savedmodel"); returns that path.

    ``version`` defaults to one more than the highest existing version (1 for the first); if
    another export takes it meanwhile, this one takes the next.
    The metadata records the run's dataset, binarization and test ELBO.
    """
    check_name("model_name", model_name)
    model_dir = check_writable_dir(Path(base_dir) / model_name, "base_dir")
    automatic = version is None
    version = (next_version(model_dir) if automatic
               else check_int("version", version, maximum=MAX_INT64))
    path = model_dir / str(version)
    check_new(path, "version")
    check_int("num_samples", num_samples)
    run = RunDirectory(run_dir)
    model = run.load_model(checkpoint)
    info = {"model_name": model_name, "version": version, **run_metadata(run, checkpoint)}
    return export_model(model, path, format=format, num_samples=num_samples, metadata=info,
                        next_free_version=automatic)
