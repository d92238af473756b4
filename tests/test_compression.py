"""The code file format, quantization, and compress/decompress with a trained model."""

import math
import struct
import zlib

import numpy as np
import pytest

from tfvae import Autoencoder, InputError
from tfvae.cli import main
from tfvae.applications.compression import (MAGIC, compress, decode_file, decompress, dequantize,
                               encode_file, model_fingerprint, pack_bits, quantize,
                               quantizer_params, unpack_bits)
from tfvae.data import load_dataset
from tfvae.runs import load_run


@pytest.fixture(scope="module")
def vae(tiny_run):
    return load_run(tiny_run)[0]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist", binarize="none", test_examples=100).x_test


def _header_size(latent_dim):
    return 52 + 8 * latent_dim


@pytest.mark.parametrize("bits", [1, 3, 7, 8, 12, 16])
def test_pack_and_unpack_bits(bits):
    rng = np.random.default_rng(bits)
    codes = np.concatenate([[0, 2 ** bits - 1], rng.integers(0, 2 ** bits, 101)]).astype(np.uint32)
    payload = pack_bits(codes, bits)
    assert len(payload) == math.ceil(len(codes) * bits / 8)
    np.testing.assert_array_equal(unpack_bits(payload, bits, len(codes)), codes)


def test_bits_are_packed_most_significant_first():
    assert pack_bits([1, 2, 3, 0], 2) == bytes([0b01101100])
    assert pack_bits([5], 3) == bytes([0b10100000])


def test_uniform_quantization_error_is_at_most_half_a_bin():
    z = np.random.default_rng(0).normal(size=(500, 4)) * [1, 2, 0.1, 5]
    for bits in (1, 4, 10):
        a, b = quantizer_params(z, "uniform")
        codes = quantize(z, bits, "uniform", a, b)
        assert codes.min() == 0 and codes.max() == 2 ** bits - 1
        error = np.abs(dequantize(codes, bits, "uniform", a, b) - z)
        assert np.all(error <= (b - a) / 2 ** bits / 2 + 1e-5)


def test_gaussian_quantizer_fills_its_bins_equally_for_normal_codes():
    z = np.random.default_rng(1).normal(3.0, 2.0, size=(20000, 1))
    a, b = quantizer_params(z, "gaussian")
    assert a[0] == pytest.approx(3.0, abs=0.05) and b[0] == pytest.approx(2.0, abs=0.05)
    counts = np.bincount(quantize(z, 2, "gaussian", a, b)[:, 0], minlength=4)
    np.testing.assert_allclose(counts / len(z), 0.25, atol=0.01)
    # Its centres are the normal's quantiles at 1/8, 3/8, 5/8, 7/8.
    centres = dequantize(np.arange(4)[:, None], 2, "gaussian", a, b)[:, 0]
    np.testing.assert_allclose(centres, a[0] + b[0] * np.array([-1.1503, -0.3186, 0.3186, 1.1503]),
                               atol=1e-3)


def test_a_constant_dimension_decodes_to_its_value():
    z = np.stack([np.full(10, 0.7), np.linspace(-1, 1, 10)], axis=1)
    for quantizer in ("uniform", "gaussian"):
        a, b = quantizer_params(z, quantizer)
        decoded = dequantize(quantize(z, 3, quantizer, a, b), 3, quantizer, a, b)
        np.testing.assert_allclose(decoded[:, 0], 0.7, rtol=1e-6)


def test_file_layout_and_round_trip():
    codes = np.random.default_rng(2).integers(0, 32, size=(7, 3)).astype(np.uint32)
    a, b = np.array([-1, 0, 1], np.float32), np.array([1, 2, 3], np.float32)
    blob = encode_file(codes, 5, "gaussian", a, b, bytes(range(32)))
    assert len(blob) == _header_size(3) + math.ceil(7 * 3 * 5 / 8) + 4
    assert blob[:8] == MAGIC == b"\x89TFVAE\r\n"
    assert struct.unpack(">HBBII", blob[8:20]) == (1, 5, 1, 7, 3)
    assert blob[20:52] == bytes(range(32))
    assert np.frombuffer(blob[52:64], ">f4").tolist() == [-1, 0, 1]
    assert struct.unpack(">I", blob[-4:])[0] == zlib.crc32(blob[:-4])
    fields = decode_file(blob)
    np.testing.assert_array_equal(fields["codes"], codes)
    assert (fields["bits"], fields["quantizer"], fields["fingerprint"]) == (5, "gaussian",
                                                                            bytes(range(32)))
    np.testing.assert_array_equal(fields["b"], b)


def _blob(bits=4):
    codes = np.arange(12, dtype=np.uint32).reshape(4, 3) % 2 ** bits
    return encode_file(codes, bits, "uniform", np.zeros(3), np.ones(3), bytes(32))


@pytest.mark.parametrize("damage, message", [
    (lambda blob: blob[:-1], "truncated"),
    (lambda blob: blob[:30], "truncated"),
    (lambda blob: blob + b"\x00", "truncated or corrupted"),
    (lambda blob: blob[:-6] + bytes([blob[-6] ^ 1]) + blob[-5:], "CRC32"),
    (lambda blob: blob[:60] + bytes([blob[60] ^ 0x80]) + blob[61:], "CRC32"),
    (lambda blob: b"PK\x03\x04" + blob[4:], "tfvae code file"),
    (lambda blob: blob[:8] + b"\x00\x02" + blob[10:], "version 1"),
    (lambda blob: b"", "tfvae code file"),
])
def test_damaged_files_are_refused(damage, message):
    with pytest.raises(InputError, match=message) as info:
        decode_file(damage(_blob()))
    assert info.value.argument == "input"


def test_compress_then_decompress_with_a_vae(vae, digits):
    reconstruction = vae.reconstruct(digits).numpy()
    errors = {}
    for bits in (1, 4, 8):
        blob = compress(vae, digits, bits)
        assert len(blob) == _header_size(4) + math.ceil(100 * 4 * bits / 8) + 4
        images = decompress(vae, blob)
        assert images.shape == (100, 28, 28, 1)
        errors[bits] = float(np.mean((images - reconstruction) ** 2))
    # More bits, closer to the unquantized reconstruction; 8 bits is almost exactly it.
    assert errors[1] > errors[4] > errors[8]
    assert errors[8] < 1e-5 < errors[1]


def test_decompress_needs_the_same_model(vae, digits):
    blob = compress(vae, digits[:5], 4)
    other = Autoencoder(latent_dim=4, hidden=16)
    assert model_fingerprint(other) != model_fingerprint(vae)
    with pytest.raises(InputError) as info:
        decompress(other, blob)
    assert info.value.argument == "RUN_DIR" and "sha256" in str(info.value)


def test_compress_checks_bits(vae, digits):
    for bits in (0, 17, 2.5, True):
        with pytest.raises(InputError, match="^bits: expected"):
            compress(vae, digits[:2], bits)


def test_compress_and_decompress_cli(tiny_run, vae, digits, tmp_path):
    data, codes, out = tmp_path / "data.npz", tmp_path / "codes.tfvae", tmp_path / "out.npz"
    np.savez(data, x=digits[:20])
    assert main(["compress", str(tiny_run), "--input", str(data), "--bits", "6", "--quantizer",
                 "gaussian", "--out", str(codes)]) == 0
    assert codes.stat().st_size == _header_size(4) + math.ceil(20 * 4 * 6 / 8) + 4
    assert decode_file(codes.read_bytes())["quantizer"] == "gaussian"
    assert main(["decompress", str(tiny_run), "--input", str(codes), "--out", str(out)]) == 0
    with np.load(out) as f:
        np.testing.assert_allclose(f["x"], decompress(vae, codes.read_bytes()), atol=1e-6)
        assert np.mean((f["x"] - vae.reconstruct(digits[:20]).numpy()) ** 2) < 1e-3


def test_cli_refuses_a_truncated_file_and_writes_nothing(tiny_run, vae, digits, tmp_path, capsys):
    codes, out = tmp_path / "codes.tfvae", tmp_path / "out.npz"
    codes.write_bytes(compress(vae, digits[:10], 8)[:-10])
    assert main(["decompress", str(tiny_run), "--input", str(codes), "--out", str(out)]) == 2
    assert "--input" in capsys.readouterr().err
    assert not out.exists()
    data = tmp_path / "data.npz"
    np.savez(data, x=digits[:3])
    assert main(["compress", str(tiny_run), "--input", str(data), "--bits", "0", "--out",
                 str(codes)]) == 2
    assert "--bits" in capsys.readouterr().err
    assert codes.stat().st_size == len(compress(vae, digits[:10], 8)) - 10  # left as it was


def test_cli_refuses_images_of_another_shape(tiny_run, tmp_path, capsys):
    data, codes = tmp_path / "faces.npz", tmp_path / "codes.tfvae"
    np.savez(data, x=np.zeros((3, 28, 20), np.uint8))
    assert main(["compress", str(tiny_run), "--input", str(data), "--bits", "4", "--out",
                 str(codes)]) == 2
    err = capsys.readouterr().err
    assert "--input (x)" in err and "(28, 28, 1)" in err and "(28, 20, 1)" in err
    assert not codes.exists()
