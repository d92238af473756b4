"""Conditional VAEs on MNIST: how well their samples show the class they were asked for.

The `make main` recipe (784-400-D ReLU, Adam 1e-3, batch 128, dynamic binarization, 10 epochs,
seed 0) trained with ``--conditional`` for latent dimensions D in {2, 20}. For each it prints the
test ELBO (log p(x|y) bound) and the accuracy, on 100 samples of each class drawn from p(z), of a
softmax regression trained on the real training digits (``--classifier-steps`` steps, 2000),
beside that classifier's accuracy on the real test digits; and writes each model's samples, a
row per class, to ``docs/figures/conditional_samples_D.png``. Results go to
``benchmarks/results/conditional.json``.

    python benchmarks/conditional.py [--epochs 10] [--train-examples 60000]
                                     [--classifier-steps 2000] [--out DIR]

``--train-examples N`` trains the models and the classifier on the first N training digits;
``--out DIR`` writes the figures and the results there instead.

Each configuration runs in its own process (``common.run_child``).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import ROOT, add_out, machine, print_table, run_child, write_results

RECIPE = {"model_config": {"hidden": 400, "activation": "relu"},
          "data_config": {"name": "mnist", "binarize": "dynamic"},
          "batch_size": 128, "optimizer": "adam", "learning_rate": 1e-3, "seed": 0}
PER_CLASS = 100
CLASSIFIER_STEPS = 2000  # softmax_regression's default


def child(latent_dim, epochs, train_examples, out="", classifier_steps=CLASSIFIER_STEPS):
    """Train one conditional model; write its sample grid (to ``out``, else docs/figures); print
    a JSON line with its figures."""
    from tfvae.data import load_dataset
    from tfvae.applications.features import softmax_regression
    from tfvae.images import save_grid
    from tfvae.runs import RunDirectory
    from tfvae.applications.synthesis import class_samples
    from tfvae.training.pipeline import train

    latent_dim, epochs, train_examples = int(latent_dim), int(epochs), int(train_examples)
    recipe = {**RECIPE, "data_config": {**RECIPE["data_config"],
                                        "train_examples": train_examples}}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        model = train(run_dir, **{**recipe, "model_config": {**RECIPE["model_config"],
                                                             "latent_dim": latent_dim}},
                      conditional=True, epochs=epochs, verbose=0).model
        rows = RunDirectory(run_dir).read_metrics()
    data = load_dataset("mnist", binarize="none")
    score = softmax_regression(data.x_train[:train_examples], data.y_train[:train_examples],
                               steps=int(classifier_steps))
    images, labels = class_samples(model, PER_CLASS, seed=0)
    figure = Path(out or ROOT / "docs" / "figures") / f"conditional_samples_{latent_dim}.png"
    # A row per class, the first 12 samples of each.
    figure.parent.mkdir(parents=True, exist_ok=True)
    rows_of_12 = images.reshape(model.num_classes, PER_CLASS, *images.shape[1:])[:, :12]
    save_grid(rows_of_12.reshape(-1, *images.shape[1:]), figure, columns=12)
    print(json.dumps({
        "latent_dim": latent_dim, "epochs": epochs, "test_elbo": rows[-1]["test_elbo"],
        "active_units": rows[-1]["active_units"],
        "classifier_on_real_test": score(data.x_test, data.y_test),
        "classifier_on_samples": score(images, labels),
        "seconds": round(sum(r["seconds"] for r in rows), 1),
        "figure": str(figure.relative_to(ROOT) if figure.is_relative_to(ROOT) else figure)}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-examples", type=int, default=60000)
    parser.add_argument("--classifier-steps", type=int, default=CLASSIFIER_STEPS,
                        help="training steps of the softmax regression that scores the samples")
    add_out(parser, "the figures and conditional.json")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    script = str(Path(__file__).resolve())
    results = [run_child([script, "--child", d, args.epochs, args.train_examples, args.out or "",
                          args.classifier_steps]) for d in (2, 20)]
    print_table(results, ["latent_dim", "epochs", "test_elbo", "active_units",
                          "classifier_on_real_test", "classifier_on_samples", "seconds",
                          "figure"])
    write_results("conditional", out=args.out, runs=results)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:])
    else:
        main()
