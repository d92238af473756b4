"""784-400-20 ReLU VAE, batch 128, Adam 1e-3, written the way the keras.io VAE example writes it
(https://keras.io/examples/generative/vae/): a ``Sampling`` layer, functional encoder and
decoder, a ``keras.Model`` subclass with its own ``train_step``, and ``fit`` on the NumPy array
of MNIST grey levels with ``batch_size=128`` and Keras's defaults otherwise (as in the example,
no binarization, which is less work than tfvae's). Prints one JSON line: examples per second of
each epoch.

    python keras_io_vae.py [--epochs 4] [--train-examples 60000]
"""

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

MNIST = Path(__file__).resolve().parents[2] / "tfvae" / "data" / "packaged" / "mnist.npz"


class Sampling(layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(shape=ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


def build(latent_dim=20):
    encoder_inputs = keras.Input(shape=(784,))
    x = layers.Dense(400, activation="relu")(encoder_inputs)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = Sampling()([z_mean, z_log_var])
    encoder = keras.Model(encoder_inputs, [z_mean, z_log_var, z], name="encoder")
    latent_inputs = keras.Input(shape=(latent_dim,))
    x = layers.Dense(400, activation="relu")(latent_inputs)
    decoder_outputs = layers.Dense(784, activation="sigmoid")(x)
    decoder = keras.Model(latent_inputs, decoder_outputs, name="decoder")
    return encoder, decoder


class VAE(keras.Model):
    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def train_step(self, data):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            reconstruction_loss = ops.mean(
                ops.sum(keras.losses.binary_crossentropy(data[..., None], reconstruction[..., None]),
                        axis=1))
            kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {m.name: m.result() for m in self.metrics}


class Rate(keras.callbacks.Callback):
    def __init__(self, n):
        super().__init__()
        self.n, self.rates = n, []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.rates.append(self.n / (time.perf_counter() - self.start))
        self.loss = float(logs["total_loss"])


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-examples", type=int, default=60000)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    with np.load(MNIST) as f:
        mnist_digits = f["x_train"][:args.train_examples].reshape(-1, 784).astype("float32") / 255
    vae = VAE(*build())
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    rate = Rate(len(mnist_digits))
    vae.fit(mnist_digits, epochs=args.epochs, batch_size=128, verbose=0, callbacks=[rate])
    print(json.dumps({"name": "keras.io way", "examples_per_second": rate.rates,
                      "last_loss": rate.loss}))


if __name__ == "__main__":
    main()
