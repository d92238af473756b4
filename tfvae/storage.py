"""Writing files so that a crash, a kill or a full disk leaves the old file or the new one, never
half of one, and with the mode the user's umask gives (temporary files are created 0600).
"""

import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tfvae.errors import InputError

# Temporaries are named ".NAME.tmpPID-XXXX": the process that writes them, so that a later
# writer can tell what a killed one left behind (an empty PID: written before PIDs were kept).
_TEMPORARY = re.compile(r"^\..+\.tmp(\d*)-")


def temporary_prefix(name):
    """The prefix of this process's temporaries for ``name`` (see :func:`remove_stale`)."""
    return f".{name}.tmp{os.getpid()}-"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(directory):
    """Remove the temporaries that killed writers left in ``directory`` (files or folders)."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        match = _TEMPORARY.match(entry.name)
        if not match or (match.group(1) and _alive(int(match.group(1)))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def umask_mode(mode=0o666):
    """``mode`` less the user's umask: what a file created the usual way would get."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def check_writable_dir(path, argument="--out"):
    """Check that the directory ``path`` exists, or can be made: its nearest existing ancestor is
    a directory this process may write in."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise InputError(argument, "a path whose existing part is a directory",
                         f"{str(path)!r} ({str(existing)!r} is a file)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(argument, "a path in a directory you may write in",
                         f"{str(path)!r} ({str(existing)!r} is not writable)")
    return path


def check_output(path, suffix, *, overwrite=False, argument="--out"):
    """Check an output file before any work is done: the right suffix, in an existing directory
    that may be written, and no existing file replaced unless ``overwrite``."""
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise InputError(argument, f"a {suffix} path", repr(str(path)))
    if not path.parent.is_dir():
        raise InputError(argument, "a path in an existing directory", repr(str(path)))
    if path.is_dir():
        raise InputError(argument, "a file path", f"the directory {str(path)!r}")
    if path.exists() and not overwrite:
        raise InputError(argument, "a file that does not exist yet (or --overwrite to replace "
                         "it)", f"{str(path)!r}, which exists")
    check_writable_dir(path.parent, argument)
    return path


def write_atomic(path, write):
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    If ``write`` fails (a full disk included) the temporary file is removed and ``path`` keeps
    what it held.
    """
    path = Path(path)
    # The suffix is kept: Keras's save() picks the format by it.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path.name),
                               suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_bytes(path, data):
    """Write ``data`` to ``path`` atomically."""
    return write_atomic(path, lambda tmp: Path(tmp).write_bytes(data))


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def _numpy_scalar(value):
    if isinstance(value, np.generic):  # numpy's integers and floats, as users pass them
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_json(path, obj):
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=2, default=_numpy_scalar) + "\n")


def read_json(path):
    return json.loads(Path(path).read_text())


def write_npz(path, **arrays):
    """Write ``arrays`` to ``path`` as a compressed .npz, atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return write_bytes(path, buffer.getvalue())
