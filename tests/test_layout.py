"""The package's layout as users meet it: importing is enough to load any tfvae file, every
documented module is reachable as an attribute, names of the earlier layout still import, and the
command answers --help without loading TensorFlow."""

import re
import subprocess
import sys

from conftest import ROOT, cli_env


def _python(code):
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_import_tfvae_is_enough_to_load_a_model_file(tiny_run):
    out = _python("import sys, tfvae, keras\n"
                  f"model = keras.saving.load_model({str(tiny_run / 'model.keras')!r})\n"
                  "print(type(model).__name__, type(model.decoder.body).__name__)")
    assert out == "VAE MLP"


def test_every_module_the_docs_name_is_an_attribute_and_old_names_import():
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    files = {"tfvae.json", "tfvae.lock", "tfvae.run_dir"}  # file names and an MLflow tag
    named = sorted({m for path in documents
                    for m in re.findall(r"(?<![\w.])tfvae(?:\.[a-z_]+)+", path.read_text())}
                   - files)
    assert "tfvae.training.summaries" in named or "tfvae.summaries" in named
    out = _python(
        "import importlib, tfvae\n"
        f"for name in {named!r}:\n"
        "    obj = tfvae\n"
        "    for part in name.split('.')[1:]:\n"
        "        obj = getattr(obj, part)\n"
        "from tfvae.baselines import MCEM, WakeSleep\n"
        "import tfvae.summaries, tfvae.serving, tfvae.models.networks\n"
        "print(tfvae.summaries is importlib.import_module('tfvae.training.summaries'),\n"
        "      tfvae.models.networks.MLP is tfvae.layers.bodies.MLP, MCEM.__module__)")
    assert out == "True True tfvae.models.mcem"


def test_the_command_answers_help_without_tensorflow():
    out = _python("import sys\nsys.argv = ['tfvae', '--help']\nimport tfvae.cli\n"
                  "try:\n    tfvae.cli.build_parser().parse_args(['train', '--help'])\n"
                  "except SystemExit:\n    pass\n"
                  "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    assert out.splitlines()[-1] == "False False"
