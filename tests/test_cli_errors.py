"""Every command, given bad input, answers with one line naming the argument and exit status 2:
no traceback, and nothing written or removed."""

import os

import numpy as np
import pytest

from tfvae.cli import main

# RUN is the tiny trained run; OUT a fresh directory; FILE a file that exists; JUNK a file of
# random bytes named .npz; TRUNC an .npz cut in half; PNG an existing image; MIXED a folder of
# images of two sizes.
CASES = {
    "train-out-is-a-file": (["train", "--out", "FILE"], "--out"),
    "train-out-under-a-file": (["train", "--out", "FILE/run"], "--out"),
    "train-latent-dim": (["train", "--out", "OUT/r", "--latent-dim", "0"], "--latent-dim"),
    "train-epochs": (["train", "--out", "OUT/r", "--epochs", "0"], "--epochs"),
    "train-batch-size": (["train", "--out", "OUT/r", "--batch-size", "0"], "--batch-size"),
    "train-learning-rate": (["train", "--out", "OUT/r", "--learning-rate", "-1"],
                            "--learning-rate"),
    "train-model": (["train", "--out", "OUT/r", "--model", "gan"], "--model"),
    "train-flow-steps": (["train", "--out", "OUT/r", "--posterior", "iaf", "--flow-steps", "0"],
                         "--flow-steps"),
    "train-vamp-conditional": (["train", "--out", "OUT/r", "--prior", "vamp", "--conditional"],
                               "prior"),
    "train-two-layers-iaf": (["train", "--out", "OUT/r", "--stochastic-layers", "2",
                              "--posterior", "iaf"], "--stochastic-layers"),
    "train-mcem": (["train", "--out", "OUT/r", "--model", "mcem"], "--model"),
    "train-wake-sleep-prior": (["train", "--out", "OUT/r", "--model", "wake_sleep", "--prior",
                                "mog"], "prior"),
    "train-missing-dataset": (["train", "--out", "OUT/r", "--dataset", "OUT/none.npz"],
                              "--dataset"),
    "train-random-bytes": (["train", "--out", "OUT/r", "--dataset", "JUNK"], "--dataset"),
    "train-truncated-npz": (["train", "--out", "OUT/r", "--dataset", "TRUNC"], "--dataset"),
    "train-image-size-zero": (["train", "--out", "OUT/r", "--image-size", "0", "64"],
                              "--image-size"),
    "train-image-size-negative": (["train", "--out", "OUT/r", "--image-size", "-8", "64"],
                                  "--image-size"),
    "train-image-size-one-value": (["train", "--out", "OUT/r", "--image-size", "64"],
                                   "--image-size"),
    "train-image-size-not-an-int": (["train", "--out", "OUT/r", "--image-size", "64", "wide"],
                                    "--image-size"),
    "train-image-size-conv": (["train", "--out", "OUT/r", "--architecture", "conv",
                               "--image-size", "30", "64"], "--image-size"),
    "train-mixed-sizes": (["train", "--out", "OUT/r", "--dataset", "MIXED"], "--image-size H W"),
    "train-overwrite-not-a-run": (["train", "--out", "OUT", "--overwrite"], "--overwrite"),
    "train-not-an-int": (["train", "--out", "OUT/r", "--epochs", "two"], "--epochs"),
    "evaluate-not-a-run": (["evaluate", "OUT"], "RUN_DIR"),
    "evaluate-examples": (["evaluate", "RUN", "--log-likelihood", "--examples", "0"],
                          "--examples"),
    "evaluate-num-samples": (["evaluate", "RUN", "--log-likelihood", "--num-samples", "0"],
                             "--num-samples"),
    "evaluate-batch-size": (["evaluate", "RUN", "--batch-size", "0"], "--batch-size"),
    "sample-num": (["sample", "RUN", "--num", "0", "--out", "OUT/s.png"], "--num"),
    "sample-temperature": (["sample", "RUN", "--temperature", "-1", "--out", "OUT/s.png"],
                           "--temperature"),
    "sample-suffix": (["sample", "RUN", "--out", "OUT/s.jpg"], "--out"),
    "sample-existing-out": (["sample", "RUN", "--out", "PNG"], "--out"),
    "sample-missing-dir": (["sample", "RUN", "--out", "OUT/no/s.png"], "--out"),
    "reconstruct-num": (["reconstruct", "RUN", "--num", "0", "--out", "OUT/r.png"], "--num"),
    "export-version": (["export", "RUN", "--model-name", "m", "--base-dir", "OUT",
                        "--version", "0"], "--version"),
    "export-num-samples": (["export", "RUN", "--model-name", "m", "--base-dir", "OUT",
                            "--num-samples", "0"], "--num-samples"),
    "export-model-name": (["export", "RUN", "--model-name", "a b", "--base-dir", "OUT"],
                          "--model-name"),
    "export-base-dir-under-a-file": (["export", "RUN", "--model-name", "m", "--base-dir",
                                      "FILE/export"], "--base-dir"),
    "export-no-model-name": (["export", "RUN", "--base-dir", "OUT"], "--model-name"),
    "export-savedmodel-out": (["export", "RUN", "--model-name", "m", "--out", "OUT/m.tflite"],
                              "--out"),
    "export-format": (["export", "RUN", "--format", "pb", "--out", "OUT/m.pb"], "--format"),
    "export-tflite-no-out": (["export", "RUN", "--format", "tflite"], "--out"),
    "export-tflite-suffix": (["export", "RUN", "--format", "tflite", "--out", "OUT/m.onnx"],
                             "--out"),
    "export-tflite-existing-out": (["export", "RUN", "--format", "tflite", "--out", "TFLITE"],
                                   "--out"),
    "export-tflite-model-name": (["export", "RUN", "--format", "tflite", "--model-name", "m",
                                  "--out", "OUT/m.tflite"], "--model-name"),
    "export-tflite-num-samples": (["export", "RUN", "--format", "tflite", "--out",
                                   "OUT/m.tflite", "--num-samples", "0"], "--num-samples"),
    "export-onnx-out-is-a-file": (["export", "RUN", "--format", "onnx", "--out", "FILE"],
                                  "--out"),
    "features-suffix": (["features", "RUN", "--out", "OUT/z.txt"], "--out"),
    "features-existing-out": (["features", "RUN", "--out", "FILE"], "--out"),
    "features-no-output": (["features", "RUN"], "--out"),
    "features-tensorboard-is-a-file": (["features", "RUN", "--tensorboard", "FILE"],
                                       "--tensorboard"),
    "features-tensorboard-not-empty": (["features", "RUN", "--tensorboard", "OUT"],
                                       "--tensorboard"),
    "features-tensorboard-overwrite-not-a-projector": (
        ["features", "RUN", "--tensorboard", "OUT", "--overwrite"], "--overwrite"),
    "features-tensorboard-not-a-run": (["features", "OUT", "--tensorboard", "OUT/p"], "RUN_DIR"),
    "probe-labels": (["probe", "RUN", "--labels", "ten"], "--labels"),
    "probe-steps": (["probe", "RUN", "--steps", "0"], "--steps"),
    "finetune-steps": (["finetune", "RUN", "--steps", "0"], "--steps"),
    "interpolate-steps": (["interpolate", "RUN", "--from", "0", "--to", "1", "--steps", "1",
                           "--out", "OUT/i.png"], "--steps"),
    "interpolate-index": (["interpolate", "RUN", "--from", "0", "--to", "99999",
                           "--out", "OUT/i.png"], "--to"),
    "train-conditional-without-labels": (["train", "--out", "OUT/r", "--dataset", "frey_face",
                                          "--conditional"], "--conditional"),
    "evaluate-dataset-of-other-images": (["evaluate", "RUN", "--dataset", "SMALL"],
                                         "--dataset: expected examples of 784 values"),
    "sample-label-unconditional": (["sample", "RUN", "--label", "3", "--out", "OUT/s.png"],
                                   "--label"),
    "augment-per-class-unconditional": (["augment", "RUN", "--per-class", "2",
                                         "--out", "OUT/a.npz"], "--per-class"),
    "augment-per-class-zero": (["augment", "RUN", "--per-class", "0", "--out", "OUT/a.npz"],
                               "--per-class"),
    "augment-missing-input": (["augment", "RUN", "--input", "OUT/none.npz",
                               "--out", "OUT/a.npz"], "--input"),
    "augment-random-bytes": (["augment", "RUN", "--input", "JUNK", "--out", "OUT/a.npz"],
                             "--input"),
    "augment-per-example": (["augment", "RUN", "--input", "IMAGES", "--per-example", "0",
                             "--out", "OUT/a.npz"], "--per-example"),
    "compress-bits": (["compress", "RUN", "--input", "IMAGES", "--bits", "0",
                       "--out", "OUT/c.tfvae"], "--bits"),
    "compress-truncated-input": (["compress", "RUN", "--input", "TRUNC", "--bits", "4",
                                  "--out", "OUT/c.tfvae"], "--input"),
    "compress-existing-out": (["compress", "RUN", "--input", "IMAGES", "--bits", "4",
                               "--out", "CODES"], "--out"),
    "decompress-random-bytes": (["decompress", "RUN", "--input", "JUNK", "--out", "OUT/d.npz"],
                                "--input"),
    "reproduce-out-is-a-file": (["reproduce", "fig2", "--out", "FILE"], "--out"),
    "reproduce-seed": (["reproduce", "fig2", "--out", "OUT/p", "--seed", "-1"], "--seed"),
    "client-url": (["client", "status", "--url", "ftp://x", "--model-name", "m"], "--url"),
    "client-z": (["client", "decode", "--url", "http://127.0.0.1:9", "--model-name", "m",
                  "--z", "a,b", "--out", "OUT/d.png"], "--z"),
    "client-existing-out": (["client", "decode", "--url", "http://127.0.0.1:9",
                             "--model-name", "m", "--z", "0,0", "--out", "PNG"], "--out"),
}


def _snapshot(*folders):
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns)
            for folder in folders for p in sorted(folder.rglob("*"))}


@pytest.fixture
def places(tmp_path, tiny_run):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file\n")
    given = tmp_path / "given"
    given.mkdir()
    (given / "file.npz").write_text("some file")
    (given / "junk.npz").write_bytes(np.random.default_rng(0).bytes(2000))
    images = (np.random.default_rng(1).random((4, 28, 28)) * 255).astype(np.uint8)
    np.savez(given / "images.npz", x=images)
    np.savez(given / "small.npz", x_train=images[:, :8, :8], x_test=images[:2, :8, :8])
    whole = (given / "images.npz").read_bytes()
    (given / "trunc.npz").write_bytes(whole[: len(whole) // 2])
    (given / "codes.tfvae").write_bytes(b"codes")
    (given / "image.png").write_bytes(b"png")
    (given / "model.tflite").write_bytes(b"tflite")
    from PIL import Image
    (given / "mixed").mkdir()
    for i, size in enumerate([(8, 8), (8, 8), (12, 8)]):
        Image.new("RGB", size).save(given / "mixed" / f"{i}.png")
    return {"RUN": tiny_run, "OUT": out, "FILE": given / "file.npz", "JUNK": given / "junk.npz",
            "TRUNC": given / "trunc.npz", "IMAGES": given / "images.npz",
            "CODES": given / "codes.tfvae", "PNG": given / "image.png",
            "MIXED": given / "mixed", "TFLITE": given / "model.tflite",
            "SMALL": given / "small.npz"}


def _fill(arg, places):
    for key in sorted(places, key=len, reverse=True):
        if arg == key or arg.startswith(key + "/"):
            return str(places[key]) + arg[len(key):]
    return arg


@pytest.mark.parametrize("argv, argument", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_exit_2_and_nothing_written(argv, argument, places, capsys,
                                                           monkeypatch):
    monkeypatch.chdir(places["OUT"])
    argv = [_fill(arg, places) for arg in argv]
    watched = [places["OUT"], places["RUN"], places["FILE"].parent]
    before = _snapshot(*watched)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"tfvae {argv[0]}") and argument in lines[0], lines[0]
    assert "Traceback" not in err and "allow_pickle" not in err
    assert _snapshot(*watched) == before
    assert os.listdir(places["OUT"]) == ["notes.txt"]
