"""784-400-20 ReLU VAE, batch 128, Adam 1e-3, written in plain PyTorch (the pytorch/examples VAE
model and loss), on MNIST held in memory as one tensor: each epoch a random permutation, batches
indexed from it, a fresh Bernoulli sample of the pixels per batch (dynamic binarization, as tfvae
does). Prints one JSON line: examples per second of each epoch.

    python torch_vae.py [--epochs 4] [--train-examples 60000] [--threads N]

Needs only torch and numpy; reads the MNIST file that ships with tfvae.
"""

import argparse
import json
import time

import torch
from torch import nn
from torch.nn import functional as F

import torch_mnist

class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.fc4(F.relu(self.fc3(z))), mu, logvar


def loss_function(logits, x, mu, logvar):
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kld) / len(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-examples", type=int, default=60000)
    args = torch_mnist.parse(parser)
    x_train = torch.from_numpy(torch_mnist.grey("x_train", args.train_examples))
    model = VAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rates, losses = [], []
    for _ in range(args.epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x_train))
        for i in range(0, len(x_train), 128):
            x = torch.bernoulli(x_train[order[i:i + 128]])
            optimizer.zero_grad(set_to_none=True)
            logits, mu, logvar = model(x)
            loss = loss_function(logits, x, mu, logvar)
            loss.backward()
            optimizer.step()
        rates.append(len(x_train) / (time.perf_counter() - start))
        losses.append(float(loss.detach()))
    print(json.dumps({"name": "pytorch", "examples_per_second": rates, "last_loss": losses[-1],
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
