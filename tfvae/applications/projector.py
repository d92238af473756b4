"""The latent means of test images in TensorBoard's Embedding Projector.

A projector directory holds what the projector plugin reads:

- ``latent_means.tsv``: one row per image, the D means of q(z|x) (an autoencoder's codes);
- ``metadata.tsv``: each row's index in the test set and its label (under a header row
  ``index``, ``label``), or the index alone (no header) for a dataset without labels;
- ``sprite.png``: the images tiled row by row, left to right, in the rows' order;
- ``projector_config.pbtxt``: the plugin's config, naming the three;
- an events file whose text summary ``projector`` says what is included. It makes the directory
  a TensorBoard run: the plugin looks for configs in runs, so ``tensorboard --logdir`` at the
  directory or at any folder above it finds the embedding.

The rows are the first test images, at most ``MAX_POINTS`` and no more than a sprite of at most
``MAX_SPRITE_SIDE`` pixels a side holds (the plugin's limit), so every point has its image.
"""

import errno
import io
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tfvae import images, storage
from tfvae.errors import InputError, arg

CONFIG = "projector_config.pbtxt"
TENSOR = "latent_means.tsv"
METADATA = "metadata.tsv"
SPRITE = "sprite.png"
FILES = (CONFIG, TENSOR, METADATA, SPRITE)
EVENTS_PREFIX = "events.out.tfevents."
# The projector stays responsive up to about this many points (and computes t-SNE on them).
MAX_POINTS = 10_000
MAX_SPRITE_SIDE = 8192


def sprite_layout(num, height, width):
    """(images, columns): how many of ``num`` images of ``height`` x ``width`` a sprite holds,
    at most ``MAX_POINTS``, and the columns of its near-square grid."""
    per_row, per_column = MAX_SPRITE_SIDE // width, MAX_SPRITE_SIDE // height
    count = min(num, MAX_POINTS, per_row * per_column)
    columns = min(per_row, max(math.ceil(math.sqrt(count)), math.ceil(count / per_column)))
    return count, columns


def is_projector_dir(path):
    return (Path(path) / CONFIG).is_file()


def check_projector_dir(path, *, overwrite=False, argument="tensorboard"):
    """Check the directory a projector goes to before any work is done: a new or empty
    directory, or (with ``overwrite``) one that holds a projector tfvae wrote."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(argument, "a directory", f"the file {str(path)!r}")
    storage.check_writable_dir(path, argument)
    if path.is_dir() and any(path.iterdir()):
        projector = is_projector_dir(path)
        if not overwrite:  # --overwrite is advised only where it would be taken
            advice = f" (or {arg('overwrite', True)} to replace the projector tfvae wrote there)"
            raise InputError(argument, "a new or empty directory" + (advice if projector else ""),
                             f"{str(path)!r}, which is not empty")
        if not projector:
            raise InputError("overwrite", f"a projector directory written by tfvae (it has "
                             f"{CONFIG}); nothing was removed", f"{str(path)!r}, which is not one")
    return path


def write_projector(model, x, labels, directory, *, overwrite=False, dataset="test",
                    argument="tensorboard"):
    """Write the projector of ``model``'s latent means of ``x`` (with ``labels`` [N] or None) to
    ``directory``; returns ``{"points", "offered", "dimensions", "sprite", "description"}``
    (``sprite``: its width and height in pixels).

    The files are written in a folder beside ``directory`` and moved in at the end, so a failure
    leaves what was there; ``overwrite`` replaces only the files of a projector.
    """
    from tfvae.applications.features import latent_means
    from tfvae.applications.inputs import require_pictures

    require_pictures(model, "the projector shows each point's picture")
    directory = check_projector_dir(directory, overwrite=overwrite, argument=argument)
    x = np.asarray(model.images(x), np.float32)
    if labels is not None and len(labels) != len(x):
        raise InputError("labels", f"{len(x)} labels, one per image", str(len(labels)))
    height, width = x.shape[1:3]
    count, columns = sprite_layout(len(x), height, width)
    means = latent_means(model, x[:count], labels=(
        np.asarray(labels)[:count] if model.conditional and labels is not None else None))
    sprite = images.grid(x[:count], columns, padding=0)
    kept = (f"all {count:,}" if count == len(x) else
            f"the first {count:,} of {len(x):,} (a sprite holds at most {MAX_POINTS:,} images and "
            f"{MAX_SPRITE_SIDE} px a side)")
    description = (f"{kept} {dataset} images: the means of q(z|x) ({means.shape[1]} dimensions)"
                   f"{', with labels' if labels is not None else ''}, and a sprite of "
                   f"{sprite.shape[1]} x {sprite.shape[0]} px")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent,
                                    prefix=storage.temporary_prefix(directory.name)))
    try:
        _write_files(staging, means, None if labels is None else np.asarray(labels)[:count],
                     sprite, (width, height), description)
        _move_in(staging, directory, overwrite, argument)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"points": count, "offered": len(x), "dimensions": int(means.shape[1]),
            "sprite": (sprite.shape[1], sprite.shape[0]), "description": description}


def _write_files(folder, means, labels, sprite, image_size, description):
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorboard.plugins import projector

    buffer = io.StringIO()
    np.savetxt(buffer, means, fmt="%.7g", delimiter="\t")
    (folder / TENSOR).write_text(buffer.getvalue())
    index = np.arange(len(means))
    if labels is None:  # one column: the plugin reads it without a header
        rows = [str(i) for i in index]
    else:
        rows = ["index\tlabel"] + [f"{i}\t{label}" for i, label in zip(index, labels)]
    (folder / METADATA).write_text("\n".join(rows) + "\n")
    (folder / SPRITE).write_bytes(images.png_bytes(sprite))
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = "latent_means"
    embedding.tensor_path = TENSOR
    embedding.tensor_shape.extend(means.shape)
    embedding.metadata_path = METADATA
    embedding.sprite.image_path = SPRITE
    embedding.sprite.single_image_dim.extend(image_size)
    (folder / CONFIG).write_text(text_format.MessageToString(config))
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default(step=0):
        tf.summary.text("projector", description)
    writer.close()


def _move_in(staging, directory, overwrite, argument):
    """Put the files of ``staging`` in ``directory``: the folder itself when ``directory`` is new
    or empty, else (with ``overwrite``) file by file (each rename atomic), the config last and old
    events files removed, so the plugin never reads a config naming files that are not there.
    Without ``overwrite``, a directory that another process filled meanwhile is kept."""
    os.chmod(staging, storage.umask_mode(0o777))  # mkdtemp made it 0700
    if not overwrite:
        try:
            os.rename(staging, directory)  # replaces an empty directory, never a full one
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            raise InputError(argument, f"a new or empty directory (or {arg('overwrite', True)} "
                             "to replace the projector)", f"{str(directory)!r}, which another "
                             "process wrote while this one ran; it was kept") from None
        return
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
    if not directory.exists():
        os.replace(staging, directory)
        return
    old_events = [p for p in directory.iterdir() if p.name.startswith(EVENTS_PREFIX)]
    for entry in sorted(staging.iterdir(), key=lambda p: p.name == CONFIG):
        os.replace(entry, directory / entry.name)
    for path in old_events:
        path.unlink()


def write_run_projector(model, run_dir, directory, *, overwrite=False, dataset=None,
                        test_examples=None, argument="tensorboard"):
    """:func:`write_projector` of the test images of a run's dataset (or ``dataset``) in grey
    levels, as ``tfvae features`` reads them."""
    from tfvae.applications.inputs import run_dataset

    check_projector_dir(directory, overwrite=overwrite, argument=argument)
    data = run_dataset(model, run_dir, dataset, test_examples=test_examples)
    return write_projector(model, data.x_test, data.y_test, directory, overwrite=overwrite,
                           dataset=data.name, argument=argument)
