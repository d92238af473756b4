"""784-400-20 ReLU VAE, batch 128, Adam 1e-3, in Pythae (``pythae==0.1.2``) with its own trainer
(``BaseTrainer``: a ``DataLoader`` over its dataset, and a copy of the best model kept each
epoch, as Pythae trains). Pythae's reconstruction loss is binary cross-entropy on data it holds
fixed, so the images are binarized once (a Bernoulli sample of the grey levels, seed 0) rather
than afresh at every batch as tfvae and the plain PyTorch script do. Prints one JSON line:
examples per second of each epoch.

    python pythae_vae.py [--epochs 4] [--train-examples 60000] [--threads N]

Needs torch, numpy and pythae; reads the MNIST file that ships with tfvae.
"""

import argparse
import json
import tempfile
import time

import numpy as np
import torch
from pythae.data.datasets import BaseDataset
from pythae.models import VAE, VAEConfig
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder
from pythae.trainers import BaseTrainer, BaseTrainerConfig
from pythae.trainers.training_callbacks import TrainingCallback
from torch import nn
from torch.nn import functional as F

import torch_mnist

class Encoder(BaseEncoder):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)

    def forward(self, x):
        h = F.relu(self.fc1(x.reshape(len(x), 784)))
        return ModelOutput(embedding=self.fc21(h), log_covariance=self.fc22(h))


class Decoder(BaseDecoder):
    def __init__(self):
        super().__init__()
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, z):
        # Pythae's "bce" loss takes probabilities.
        return ModelOutput(reconstruction=torch.sigmoid(self.fc4(F.relu(self.fc3(z)))))


class EpochClock(TrainingCallback):
    def __init__(self, examples):
        self.examples, self.rates = examples, []

    def on_epoch_begin(self, training_config, **kwargs):
        self.start = time.perf_counter()

    def on_epoch_end(self, training_config, **kwargs):
        self.rates.append(self.examples / (time.perf_counter() - self.start))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-examples", type=int, default=60000)
    args = torch_mnist.parse(parser)
    grey = torch_mnist.grey("x_train", args.train_examples)
    x_train = torch.from_numpy((np.random.default_rng(0).random(grey.shape) < grey)
                               .astype(np.float32))
    model = VAE(VAEConfig(input_dim=(784,), latent_dim=20, reconstruction_loss="bce"),
                encoder=Encoder(), decoder=Decoder())
    clock = EpochClock(len(x_train))
    with tempfile.TemporaryDirectory() as out:
        config = BaseTrainerConfig(output_dir=out, per_device_train_batch_size=128,
                                   num_epochs=args.epochs, learning_rate=1e-3,
                                   optimizer_cls="Adam", no_cuda=True, seed=0)
        trainer = BaseTrainer(model, train_dataset=BaseDataset(x_train, torch.zeros(len(x_train))),
                              training_config=config,
                              callbacks=[clock])
        trainer.train()
    print(json.dumps({"name": "pythae", "examples_per_second": clock.rates,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
