"""Lossy compression with a trained model: each image becomes its latent mean quantized to B bits
per dimension, written in a small versioned file format.

File format, version 1 (integers big-endian, floats IEEE float32 big-endian)::

    offset     size              field
    0          8                 magic b"\\x89TFVAE\\r\\n" (the \\r\\n catches newline translation)
    8          2                 format version, uint16 = 1
    10         1                 B, bits per latent dimension, 1..16
    11         1                 quantizer: 0 uniform, 1 gaussian
    12         4                 N, number of images, uint32
    16         4                 D, latent dimensions, uint32
    20         32                sha256 of the model's weights (see ``model_fingerprint``)
    52         4 D               a[d]: uniform: the lowest code; gaussian: the mean
    52 + 4 D   4 D               b[d]: uniform: the highest code; gaussian: the standard deviation
    52 + 8 D   ceil(N D B / 8)   the codes k[n, d] in 0..2^B - 1, row-major, each as B bits,
                                 most significant first, packed with no padding between codes
    end - 4    4                 CRC32 (zlib) of every byte before it

Quantizers, per dimension d over the N images being compressed:

- ``uniform``: [a, b] = [min z, max z] cut into 2^B equal bins; k = floor((z - a) / (b - a) * 2^B)
  and the decoded value is the bin's centre.
- ``gaussian``: u = Phi((z - a) / b) with a, b the mean and standard deviation, cut into 2^B
  equal bins of u; the decoded value is a + b Phi^-1(the bin's centre). Bins are equally likely
  under a normal fit to the codes, which suits a VAE whose means spread like its N(0, I) prior.

Decompression decodes each quantized code to the mean of p(x|z). It needs the same trained model:
the weights' sha256 in the header is checked first.
"""

import hashlib
import math
import os
import struct
import zlib

import numpy as np
from scipy import special

from tfvae.checks import check_choice, check_int
from tfvae.errors import InputError, arg
from tfvae.options import QUANTIZERS

MAGIC = b"\x89TFVAE\r\n"
VERSION = 1
MAX_BITS = 16
_HEADER = struct.Struct(">8sHBBII32s")  # magic, version, bits, quantizer, N, D, fingerprint
_CRC = struct.Struct(">I")


def model_fingerprint(model):
    """sha256 of the model's trainable weights (float32, in order): 32 bytes.

    Two loads of one checkpoint give the same fingerprint; any other weights give another.
    """
    digest = hashlib.sha256()
    for weight in model.trainable_weights:
        digest.update(np.asarray(weight.numpy(), np.float32).tobytes())
    return digest.digest()


# ------------------------------------------------------------------------------ quantization


def check_bits(bits):
    """``bits`` per latent dimension, an integer from 1 to MAX_BITS."""
    return check_int("bits", bits, 1, MAX_BITS)


def quantizer_params(z, quantizer="uniform"):
    """The per-dimension parameters (a, b), each float32 [D], that the header stores."""
    check_choice("quantizer", quantizer, QUANTIZERS)
    z = np.asarray(z, np.float64)
    if quantizer == "uniform":
        return z.min(axis=0).astype(np.float32), z.max(axis=0).astype(np.float32)
    return z.mean(axis=0).astype(np.float32), z.std(axis=0).astype(np.float32)


def quantize(z, bits, quantizer, a, b):
    """Codes k [N, D] (uint32) in 0..2^B - 1 of z [N, D]."""
    check_bits(bits)
    check_choice("quantizer", quantizer, QUANTIZERS)
    z, a, b = (np.asarray(v, np.float64) for v in (z, a, b))
    levels = 2 ** bits
    if quantizer == "uniform":
        width = b - a
        # A dimension with one value everywhere has width 0: every code is bin 0.
        u = np.where(width > 0, (z - a) / np.where(width > 0, width, 1.0), 0.0)
    else:
        u = np.where(b > 0, special.ndtr((z - a) / np.where(b > 0, b, 1.0)), 0.0)
    return np.clip(np.floor(u * levels), 0, levels - 1).astype(np.uint32)


def dequantize(codes, bits, quantizer, a, b):
    """The decoded latent values [N, D] (float32) of codes k [N, D]: each bin's centre."""
    check_bits(bits)
    check_choice("quantizer", quantizer, QUANTIZERS)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    centre = (np.asarray(codes, np.float64) + 0.5) / 2 ** bits
    if quantizer == "uniform":
        return (a + centre * (b - a)).astype(np.float32)
    return (a + b * special.ndtri(centre)).astype(np.float32)


def pack_bits(codes, bits):
    """Codes [M] in 0..2^B - 1 as a byte string of ceil(M B / 8) bytes, B bits each, MSB first."""
    codes = np.asarray(codes, np.uint32).ravel()
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
    planes = ((codes[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(planes.ravel()).tobytes()


def unpack_bits(payload, bits, count):
    """The ``count`` codes (uint32 [count]) packed by :func:`pack_bits`."""
    planes = np.unpackbits(np.frombuffer(payload, np.uint8))[:count * bits].reshape(count, bits)
    weights = (2 ** np.arange(bits - 1, -1, -1)).astype(np.uint32)
    return planes.astype(np.uint32) @ weights


# ------------------------------------------------------------------------------- the format


def encode_file(codes, bits, quantizer, a, b, fingerprint):
    """The bytes of a version-1 file holding codes [N, D]."""
    codes = np.asarray(codes, np.uint32)
    n, d = codes.shape
    header = _HEADER.pack(MAGIC, VERSION, bits, QUANTIZERS.index(quantizer), n, d, fingerprint)
    body = (header + np.asarray(a, ">f4").tobytes() + np.asarray(b, ">f4").tobytes()
            + pack_bits(codes, bits))
    return body + _CRC.pack(zlib.crc32(body))


def file_size(n, d, bits):
    """The size in bytes of a version-1 file of ``n`` codes of ``d`` x ``bits`` bits."""
    return _HEADER.size + 8 * d + math.ceil(n * d * bits / 8) + _CRC.size


def read_header(blob, argument="input"):
    """The header of a version-1 file, checked against the file's length and its CRC32 before
    any code is unpacked: a dict with ``bits``, ``quantizer``, ``n``, ``d``, ``fingerprint``,
    ``a``, ``b`` and ``payload`` (a memoryview of the packed codes). Raises InputError naming
    ``argument`` for a file that is not one, of another version, truncated or corrupted."""
    blob = memoryview(blob).cast("B")
    if len(blob) < len(MAGIC) or blob[:len(MAGIC)] != MAGIC:
        raise InputError(argument, "a tfvae code file (starting with the bytes "
                         f"{MAGIC!r})", f"a file starting with {bytes(blob[:len(MAGIC)])!r}")
    minimum = _HEADER.size + _CRC.size
    if len(blob) < minimum:
        raise InputError(argument, f"a complete tfvae code file (at least {minimum} bytes)",
                         f"{len(blob)} bytes (truncated)")
    _, version, bits, quantizer, n, d, fingerprint = _HEADER.unpack_from(blob)
    if version != VERSION:
        raise InputError(argument, f"a tfvae code file of format version {VERSION}",
                         f"version {version}")
    expected = file_size(n, d, bits)
    if len(blob) != expected:
        raise InputError(argument, f"{expected} bytes, as its header gives for {n} codes of "
                         f"{d} x {bits} bits", f"{len(blob)} bytes (truncated or corrupted)")
    (stored,) = _CRC.unpack_from(blob, len(blob) - _CRC.size)
    actual = zlib.crc32(blob[:-_CRC.size])
    if stored != actual:
        raise InputError(argument, f"a file whose CRC32 matches its contents ({stored:08x})",
                         f"CRC32 {actual:08x} (the file is corrupted)")
    if not 1 <= bits <= MAX_BITS or quantizer >= len(QUANTIZERS):
        raise InputError(argument, f"bits 1..{MAX_BITS} and quantizer 0..{len(QUANTIZERS) - 1}",
                         f"bits {bits}, quantizer {quantizer}")
    offset = _HEADER.size
    a = np.frombuffer(blob, ">f4", d, offset).astype(np.float32)
    b = np.frombuffer(blob, ">f4", d, offset + 4 * d).astype(np.float32)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError(argument, "finite quantizer parameters", "NaN or infinite values")
    return {"bits": bits, "quantizer": QUANTIZERS[quantizer], "n": n, "d": d,
            "fingerprint": fingerprint, "a": a, "b": b,
            "payload": blob[offset + 8 * d:-_CRC.size]}


def read_codes(header, start=0, stop=None):
    """The codes [stop - start, D] (uint32) of rows ``start`` to ``stop`` of a file's
    :func:`read_header`: only the bytes that hold them are unpacked."""
    bits, d = header["bits"], header["d"]
    stop = header["n"] if stop is None else min(stop, header["n"])
    first, last = start * d * bits, stop * d * bits  # in bits
    chunk = np.frombuffer(header["payload"][first // 8:math.ceil(last / 8)], np.uint8)
    planes = np.unpackbits(chunk)[first % 8:first % 8 + last - first]
    weights = (2 ** np.arange(bits - 1, -1, -1)).astype(np.uint32)
    return (planes.reshape(-1, bits).astype(np.uint32) @ weights).reshape(stop - start, d)


def decode_file(blob, argument="input"):
    """The fields of a version-1 file: :func:`read_header`'s with ``codes`` [N, D] for
    ``payload``."""
    header = read_header(blob, argument)
    fields = {k: v for k, v in header.items() if k not in ("payload", "n", "d")}
    return {**fields, "codes": read_codes(header)}


# -------------------------------------------------------------------------------- the model


def compress(model, x, bits, quantizer="uniform", batch_size=1000):
    """Images x [N, *E] -> the bytes of a code file: the latent means quantized to ``bits``."""
    from tfvae.applications.features import latent_means

    check_bits(bits)
    check_choice("quantizer", quantizer, QUANTIZERS)
    z = latent_means(model, x, batch_size=batch_size)
    a, b = quantizer_params(z, quantizer)
    codes = quantize(z, bits, quantizer, a, b)
    return encode_file(codes, bits, quantizer, a, b, model_fingerprint(model))


def decompress(model, blob, argument="input", batch_size=1000):
    """The bytes of a code file -> images [N, *E], the mean of p(x|z) at each decoded code."""
    batches = list(decompress_batches(model, blob, argument, batch_size))
    if not batches:
        return np.zeros((0, *model.image_shape), np.float32)
    return np.concatenate(batches)


def decompress_batches(model, blob, argument="input", batch_size=1000):
    """The images of a code file, ``batch_size`` at a time: the header is checked against the
    model (its weights' sha256 and latent dimensions) before any code is unpacked, and no more
    than one batch of codes and images is held at once."""
    header = read_header(blob, argument)
    fingerprint = model_fingerprint(model)
    if header["fingerprint"] != fingerprint:
        raise InputError("RUN_DIR", f"the model that wrote {arg(argument)} (weights sha256 "
                         f"{header['fingerprint'].hex()[:16]}...)",
                         f"a model with weights sha256 {fingerprint.hex()[:16]}...")
    latent_dim = int(model.latent_dim)
    if header["d"] != latent_dim:
        raise InputError(argument, f"codes of {latent_dim} dimensions", f"{header['d']}")
    return _decoded(model, header, batch_size)


def _decoded(model, header, batch_size):
    for start in range(0, header["n"], batch_size):
        codes = read_codes(header, start, start + batch_size)
        z = dequantize(codes, header["bits"], header["quantizer"], header["a"], header["b"])
        yield model.decode(z).mean().numpy()


def decompress_to_npz(model, blob, out, *, overwrite=False, argument="input",
                      batch_size=1000):
    """Decode a code file into the .npz ``out`` (images as ``x``), writing each batch as it is
    decoded: memory holds one batch, however many images the file holds. Returns N."""
    import zipfile

    from tfvae.storage import write_atomic

    batches = decompress_batches(model, blob, argument, batch_size)
    count = read_header(blob, argument)["n"]
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False,
              "shape": (count, *model.image_shape)}

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z, \
                z.open("x.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(f, header)
            for images in batches:
                f.write(np.ascontiguousarray(images, "<f4").tobytes())

    write_atomic(out, write, overwrite=overwrite)
    return count


def read_code_file(path, argument="input"):
    """The bytes of the code file ``path``, read only once its header's size matches the file's
    (a large file that is not a code file is refused after its first bytes)."""
    from tfvae.data.files import open_regular

    expected = "a code file written by tfvae compress"
    try:
        with open_regular(path) as f:
            head = f.read(_HEADER.size)
            size = os.fstat(f.fileno()).st_size
            if len(head) < _HEADER.size or not head.startswith(MAGIC):
                return head  # read_header says what is wrong with it
            _, _, bits, _, n, d, _ = _HEADER.unpack(head)
            if size != file_size(n, d, bits):
                raise InputError(argument, f"{file_size(n, d, bits)} bytes, as its header "
                                 f"gives for {n} codes of {d} x {bits} bits",
                                 f"{str(path)!r} of {size} bytes (truncated or corrupted)")
            return head + f.read()
    except OSError as exc:
        raise InputError(argument, expected, f"{str(path)!r} ({exc.strerror or exc})") from exc
