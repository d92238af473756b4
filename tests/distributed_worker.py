"""Train tiny VAEs under a tf.distribute strategy and save their weights: run by the tests in a
subprocess, because devices and collective ops can be configured only before TensorFlow starts.

    python distributed_worker.py STRATEGY LOGICAL_CPUS JOBS_JSON

STRATEGY is "default", "mirrored" (over LOGICAL_CPUS logical CPU devices) or "multiworker"
(TF_CONFIG set by the caller). JOBS_JSON is a list of runs, trained in turn in this one process
(TensorFlow's import is paid once): each {"run_dir", "weights", "settings"}, where the settings
add model settings (a latent structure) and may set ``train_examples``, ``test_examples`` and
``batch_size``. A run that ``train`` refuses (an InputError) writes the message to
RUN_DIR.refused and the next run goes on; any other error ends the process.
"""

import sys

import tensorflow as tf


def main(strategy_name, logical_cpus, jobs):
    if logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
    strategy = strategy_name
    if strategy_name == "mirrored":
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(logical_cpus)])

    import json
    from pathlib import Path

    import numpy as np

    from tfvae.errors import InputError
    from tfvae.training.pipeline import train

    for job in json.loads(jobs):
        # 365 examples in batches of 64: the last batch (45) splits unevenly over two replicas,
        # and the 6 steps of an epoch take 2 per execution where one device trains.
        extra = dict(job.get("settings", {}))
        data = {key: extra.pop(key, default)
                for key, default in (("train_examples", 365), ("test_examples", 100))}
        batch_size = extra.pop("batch_size", 64)
        try:
            vae = train(job["run_dir"],
                        model_config={"latent_dim": 3, "hidden": 32, "num_samples": 2, **extra},
                        data_config={"name": "mnist", **data}, epochs=2, batch_size=batch_size,
                        optimizer="adam", learning_rate=1e-3, seed=3, verbose=0,
                        strategy=strategy, steps_per_execution=2,
                        # XLA on one device (too short a run for "auto" to choose it), so that
                        # the comparison with replicas, which run uncompiled, covers compiled
                        # noise too.
                        jit_compile=strategy_name == "default" or "auto").model
        except InputError as refused:
            Path(f"{job['run_dir']}.refused").write_text(str(refused))
            continue
        np.savez(job["weights"], *vae.get_weights())


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
