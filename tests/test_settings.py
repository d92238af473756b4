"""Settings declared once: the flags of `tfvae train` generated from them, the settings each
model takes, errors naming Python arguments in the library and flags on the command line, and
no flag written outside the command line."""

import ast
import pathlib
import re

import pytest

from tfvae import options
from tfvae.cli import build_parser
from tfvae.cli.flags import flag_of, speaking_as
from tfvae.errors import InputError, arg, call, render

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_train_flags_are_the_declared_settings_and_parse_to_only_what_was_given():
    parser = build_parser()
    given = parser.parse_args(["train", "--out", "r", "--hidden", "7", "--dataset", "frey_face"])
    # Nothing left out appears: train() applies the declared defaults itself.
    assert {k: v for k, v in vars(given).items() if k in options.SETTINGS} == {
        "hidden": 7, "name": "frey_face"}
    help_text = parser._subparsers._group_actions[0].choices["train"].format_help()
    flag = flag_of("train")
    for setting in options.SETTINGS.values():
        assert flag(setting.name) in help_text, setting.name
    assert f"(default: {options.SETTINGS['hidden'].default})" in help_text


def test_messages_name_python_arguments_and_the_command_line_its_flags():
    error = InputError("batch_size", f"at most {arg('num_samples', 4)} times fewer", "0")
    assert str(error) == "batch_size: expected at most num_samples=4 times fewer, got 0"
    with speaking_as("train"):
        assert str(error) == "--batch-size: expected at most --num-samples 4 times fewer, got 0"
    advice = "continue with " + call("train", run_dir="my run", resume=True)
    assert render(advice) == "continue with train(run_dir='my run', resume=True)"
    with speaking_as("train"):
        assert render(advice) == "continue with tfvae train --out 'my run' --resume"
    # A name that is no flag of the command stays as it is.
    with speaking_as("sample"):
        assert str(InputError("model", "a VAE", "x")).startswith("model: expected")


def test_train_refuses_in_python_names_before_writing(tmp_path):
    from tfvae.training import train

    with pytest.raises(InputError, match=r"^batch_size: expected an integer >= 1, got 0"):
        train(tmp_path / "run", batch_size=0)
    with pytest.raises(InputError, match=r"^beta: expected a setting that model='autoencoder' "
                                         r"takes \(one of activation, "):
        train(tmp_path / "run", model="autoencoder", model_config={"beta": 2.0})
    with pytest.raises(InputError, match=r"^prior: expected 'normal' for wake-sleep"):
        train(tmp_path / "run", model="wake_sleep", model_config={"prior": "mog"})
    assert not (tmp_path / "run").exists()


def test_each_model_names_the_settings_it_takes():
    from tfvae.models import MODELS
    from tfvae.models.settings import model_settings

    vae, autoencoder = model_settings(MODELS.get("vae")), model_settings(MODELS.get("autoencoder"))
    assert {"beta", "kl", "objective", "num_samples", "dynamic_binarization"} <= vae
    assert not {"beta", "kl", "objective", "num_samples"} & autoencoder
    assert {"latent_dim", "hidden", "likelihood"} <= autoencoder
    assert "prior" not in model_settings(MODELS.get("wake_sleep"))


def _code_strings(path):
    """The string literals of a module's code, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_no_flag_is_written_outside_the_command_line():
    flag = re.compile(r"(^|[\s(\[`'\"])--[a-z]")
    found = [f"{path.relative_to(ROOT)}: {text[:70]!r}"
             for path in sorted((ROOT / "tfvae").rglob("*.py"))
             if "cli" not in path.relative_to(ROOT / "tfvae").parts
             for text in _code_strings(path) if flag.search(text)]
    assert not found, "\n".join(found)
