"""Reading the small text files of a run directory (JSON, CSV) and the ``.keras`` files of its
models: a file that is missing a part, cut short, too large for what it holds or not what its name
says raises one :class:`tfvae.errors.InputError` naming it and what is wrong, never a traceback.
"""

import csv
import io
import json
import zipfile
from pathlib import Path

from tfvae.errors import InputError

# A run's JSON and CSV files hold settings and one row per epoch: far less than this. A larger
# one is not tfvae's, and is refused before it is read whole.
TEXT_LIMIT = 64 * 2 ** 20
# The members a model.save() file holds; Keras reads them whole, so each is bounded first.
_KERAS_MEMBERS = ("config.json", "model.weights.h5")
_DEFLATE_RATIO = 1032  # the most deflate expands (as tfvae.data.files.DEFLATE_RATIO)


def read_text(path, argument, expected, limit=TEXT_LIMIT):
    """The text of ``path`` (UTF-8), refused if larger than ``limit`` bytes or not text."""
    from tfvae.data.files import open_regular

    try:
        with open_regular(path) as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise InputError(argument, expected, f"{str(path)!r} ({exc.strerror or exc})") from exc
    if len(data) > limit:
        raise InputError(argument, expected, f"{str(path)!r}, larger than {limit:,} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise InputError(argument, expected, f"{str(path)!r} (not UTF-8 text)") from None


def read_json(path, argument, expected, kind=dict):
    """The JSON value of ``path``, which must be a ``kind``."""
    text = read_text(path, argument, expected)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(argument, expected, f"{str(path)!r} (not valid JSON: "
                         f"{str(exc).splitlines()[0][:80] if str(exc) else 'nested too deeply'})"
                         ) from None
    if not isinstance(value, kind):
        raise InputError(argument, expected, f"{str(path)!r}, whose JSON is a "
                         f"{type(value).__name__}, not an object")
    return value


def read_csv(path, argument, expected):
    """The rows of a CSV file with a header, as dicts of text (every row as long as the header)."""
    text = read_text(path, argument, expected)
    # A cell may hold one number per latent dimension: allow cells as large as the file.
    csv.field_size_limit(max(csv.field_size_limit(), TEXT_LIMIT))
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
    except csv.Error as exc:
        raise InputError(argument, expected, f"{str(path)!r} (not CSV: {exc})") from None
    for number, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            raise InputError(argument, expected, f"{str(path)!r}, whose line {number} has not "
                             f"as many cells as the header")
    return rows


def check_keras_file(path, argument="RUN_DIR"):
    """Check that ``path`` is a ``.keras`` zip with what ``model.save`` writes, each member
    no larger than its compressed size allows, before Keras reads any of it."""
    from tfvae.data.files import check_claim, open_regular

    expected = "a model saved by tfvae (a .keras zip file)"
    where = repr(str(path))
    try:
        with open_regular(path) as f, zipfile.ZipFile(f) as z:
            infos = {info.filename: info for info in z.infolist()}
            missing = [name for name in _KERAS_MEMBERS if name not in infos]
            if missing:
                raise InputError(argument, expected, f"{where} without {', '.join(missing)}")
            for info in infos.values():
                ratio = 1 if info.compress_type == zipfile.ZIP_STORED else _DEFLATE_RATIO
                check_claim(argument, f"{where} member {info.filename!r}", info.file_size,
                            info.compress_size * ratio + 1024, "zip member sizes")
    except InputError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else \
            "not a zip file: empty, truncated or corrupt"
        raise InputError(argument, expected, f"{where} ({reason})") from None


def load_keras(path, argument="RUN_DIR"):
    """``keras.saving.load_model(path)`` in safe mode, after :func:`check_keras_file`; whatever
    Keras raises on a file it cannot read becomes one InputError naming the file."""
    import keras

    path = Path(path)
    check_keras_file(path, argument)
    try:
        return keras.saving.load_model(path)
    # Keras's loader raises many types (ValueError, TypeError, KeyError, h5py's OSError...) on
    # files it cannot read; every one means the file is not a model tfvae saved.
    except Exception as exc:  # noqa: BLE001
        text = str(exc).strip()
        if "safe_mode" in text or "lambda" in text.lower():
            # Never pass on Keras's advice to turn safe mode off: such a file could run any code.
            reason = "it holds code (a Python lambda) that tfvae does not run from a file"
        else:
            first = text.splitlines()[0] if text else ""
            reason = f"{type(exc).__name__}: {first[:160]}"
        raise InputError(argument, "a model saved by tfvae (a .keras file Keras can load)",
                         f"{str(path)!r} ({reason})") from None
