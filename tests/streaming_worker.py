"""One worker of a two-worker run on localhost over a prepared dataset, for test_streaming.py:
records the labels (each example's number) of the training batches it read in epochs 0 and 1,
then trains one epoch with the others.

    python streaming_worker.py DATASET RUN_DIR OUT.json   (TF_CONFIG set by the caller)
"""

import json
import sys

import tensorflow as tf


def main(dataset, run_dir, out):
    strategy = tf.distribute.MultiWorkerMirroredStrategy()

    from tfvae.data import load_dataset, steps_per_epoch
    from tfvae.training.distribute import training_batches
    from tfvae.training.pipeline import train

    data = load_dataset(dataset, storage="stream")
    batches = training_batches(strategy, data.x_train, batch_size=8, seed=5,
                               labels=data.y_train)
    steps = steps_per_epoch(len(data.x_train), 8)
    seen = []
    for _, (x, y) in zip(range(2 * steps), batches):
        seen.append([int(v) for part in strategy.experimental_local_results(y)
                     for v in part.numpy()])
    train(run_dir, model_config={"latent_dim": 2, "hidden": 8},
          data_config={"name": dataset, "storage": "stream"}, epochs=1, batch_size=8,
          verbose=0, strategy=strategy, jit_compile=False)
    with open(out, "w") as f:
        json.dump({"steps": steps, "batches": seen}, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
