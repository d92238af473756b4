"""The one mapping from the library's Python arguments to the command line's flags.

The library names arguments as Python does (``batch_size``, see ``tfvae.errors``); the command
line shows the same messages with its flags. A Python argument is the flag of its name with '-'
for '_' unless a command calls it otherwise (``train(run_dir=...)`` is ``tfvae train --out``);
names that are no flag of the command (a model object, an array) stay as they are.
"""

from tfvae import errors

# The Python arguments that are flags under their own name ('_' written '-').
_FLAGS = frozenset("""
    activation allow_missing architecture base_dir batch_size beta binarize bits budget
    checkpoint clip_norm column_types conditional early_stopping_patience ema
    learning_rate_schedule learning_rate_warmup_epochs
    data_path dataset depth draws epochs exclude_columns false_positive_rate flow_steps format
    free_bits gradient hidden image_size input jit_compile kl kl_warmup_epochs label
    label_column latent_dim latent_groups learning_rate likelihood logistic_components method mixed_precision
    mlflow model_name num_samples objective optimizer out overwrite per_class per_example
    posterior prior prior_components projector quantizer resume seed skip_norm space standardize
    steps steps_per_execution stochastic_layers strategy temperature tensorboard test_examples
    test_split train_split
    timeout train_examples trials url version xla_measure_seconds
""".split())

# Python arguments whose flag is another name, for every command ("*") or one.
_RENAMED = {
    "*": {"name": "--dataset", "run_dir": "RUN_DIR", "out_dir": "--out"},
    "train": {"run_dir": "--out", "model": "--model", "labels": "--dataset labels",
              "storage": "--stream"},
    "interpolate": {"path": "--path"},
    "probe": {"labels": "--labels"},
    "impute": {"model": "RUN_DIR"},
    "score": {"model": "RUN_DIR"},
    "threshold": {"model": "RUN_DIR"},
    "finetune": {"labels": "--labels"},
}
def flag_of(command):
    """``flag(name)``: the flag of ``command`` for the Python argument ``name``, or None."""
    renamed = {**_RENAMED["*"], **_RENAMED.get(command, {})}

    def flag(name):
        if name in renamed:
            return renamed[name]
        return f"--{name.replace('_', '-')}" if name in _FLAGS else None

    return flag


def speaking_as(command):
    """Within, every message of the library names ``command``'s flags."""
    return errors.speaking_as(flag_of(command))
