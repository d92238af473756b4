"""Writing files so that a crash, a kill or a full disk leaves the old file or the new one, never
half of one, and with the mode the user's umask gives (temporary files are created 0600); so that
a file another process wrote meanwhile is never replaced unless asked; and so that a directory has
one writer at a time (:func:`exclusive_writer`).
"""

import ctypes
import errno
import fcntl
import io
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tfvae.errors import InputError, arg

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


def remove_stale(directory, name=None):
    """Remove the temporaries that killed writers left in ``directory`` (files or folders); only
    those of the file ``name`` when given."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        match = _TEMPORARY.match(entry.name)
        if not match or (match.group(1) and _alive(int(match.group(1)))):
            continue
        if name is not None and not entry.name.startswith(f".{name}.tmp"):
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


def check_writable_dir(path, argument="out"):
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


def check_output(path, suffix, *, overwrite=False, argument="out"):
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
        raise InputError(argument, f"a file that does not exist yet (or {arg('overwrite', True)} "
                         "to replace it)", f"{str(path)!r}, which exists")
    check_writable_dir(path.parent, argument)
    return path


_RENAME_NOREPLACE = 1  # renameat2's flag (Linux 3.15)
_AT_FDCWD = -100


def _renameat2_noreplace(source, target):
    """renameat2(RENAME_NOREPLACE); False where the system or the file system lacks it."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target),
                 _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(target))


def rename_no_replace(source, target):
    """Rename ``source`` (a file or a directory) to ``target`` in one step that fails with
    ``FileExistsError`` if ``target`` exists, however recently it appeared: the check and the
    rename cannot be split by another process's write."""
    source, target = Path(source), Path(target)
    if _renameat2_noreplace(source, target):
        return target
    if source.is_dir():
        # Claim the name with an exclusive mkdir; rename() replaces an empty directory.
        os.mkdir(target)
        os.rename(source, target)
    else:
        os.link(source, target)  # fails on an existing target
        os.unlink(source)
    return target


def write_atomic(path, write, *, overwrite=True, argument="out"):
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    If ``write`` fails (a full disk included) the temporary file is removed and ``path`` keeps
    what it held. Unless ``overwrite``, the rename itself refuses a ``path`` that exists by then
    (an ``InputError`` naming ``argument``), so a file that another process wrote while this one
    worked is kept. Temporaries of ``path`` that killed writers left are removed first.
    """
    path = Path(path)
    remove_stale(path.parent, path.name)
    # The suffix is kept: Keras's save() picks the format by it.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path.name),
                               suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, umask_mode())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                rename_no_replace(tmp, path)
            except FileExistsError:
                raise InputError(argument, "a file that does not exist yet (or "
                                 f"{arg('overwrite', True)} to replace it)",
                                 f"{str(path)!r}, which another process wrote while this one "
                                 "ran; it was kept") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_bytes(path, data, **kwargs):
    """Write ``data`` to ``path`` atomically (``kwargs``: those of :func:`write_atomic`)."""
    return write_atomic(path, lambda tmp: Path(tmp).write_bytes(data), **kwargs)


def write_text(path, text, **kwargs):
    """Write ``text`` to ``path`` atomically (``kwargs``: those of :func:`write_atomic`)."""
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text), **kwargs)


def _numpy_scalar(value):
    if isinstance(value, np.generic):  # numpy's integers and floats, as users pass them
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_json(path, obj):
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=2, default=_numpy_scalar) + "\n")


def read_json(path):
    return json.loads(Path(path).read_text())


def write_npz(path, *, overwrite=True, argument="out", **arrays):
    """Write ``arrays`` to ``path`` as a compressed .npz, atomically (see :func:`write_atomic`)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return write_bytes(path, buffer.getvalue(), overwrite=overwrite, argument=argument)


# -- one writer per directory ----------------------------------------------------------------

LOCK_FILE = ".tfvae.lock"


def _this_process():
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
    return f"process {os.getpid()} on {socket.gethostname()} ({command[:200]})"


@contextmanager
def exclusive_writer(directory, *, argument="out", what="directory"):
    """Hold ``directory``'s writer lock (made with the directory if need be) while the block runs.

    The lock is an ``flock`` on ``LOCK_FILE``, which the kernel releases when its holder exits,
    however it exits: a killed writer never leaves it held (only, at most, the file). A second
    writer is refused with an ``InputError`` naming the holder. The file is removed on release,
    and so is a directory that the lock made and the block left empty: a command leaves no trace
    of the lock.
    """
    directory = Path(directory)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, umask_mode())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 1024).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise InputError(argument, f"a {what} that no other process is writing",
                             f"{str(directory)!r}, which {holder} is writing") from None
        # The holder removed the file on release (below) before this lock was taken: try again.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, _this_process().encode(), 0)
        yield directory
    finally:
        path.unlink(missing_ok=True)
        if created and not any(directory.iterdir()):
            directory.rmdir()
        os.close(fd)  # releases the lock
