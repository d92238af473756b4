"""tfvae's residual-body VAE (``architecture="resnet"``, hidden 32, depth 1, GELU, latent_dim 32,
the discretized logistic with one component) written in plain PyTorch, batch 64, Adam 1e-3, on
32x32 RGB 8-bit images held in memory as one tensor: each epoch a random permutation, batches
indexed from it, the negative ELBO per image (analytic KL, one sample of z). Prints one JSON
line: examples per second of each epoch, the last loss and the trainable parameters, which
equal tfvae's model.count_params() for the same settings.

    python torch_resnet_vae.py --data IMAGES.npz [--epochs 4] [--threads N]

``IMAGES.npz`` holds ``x_train``, uint8 [N, 32, 32, 3], read as the levels k/255 (as tfvae reads
it); ``run.py --body resnet`` writes it. Needs only torch and numpy.
"""

import argparse
import json
import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import torch_mnist

HIDDEN, LATENT, BATCH = 32, 32, 64
STAGES, DEPTH = 2, 1
BLOCKS = DEPTH * (STAGES + 1)
BIN = 1 / 255  # the width of one of the 256 levels on [0, 1]
MIN_SCALE = 1e-4  # tfvae's floor under softplus, for q's and p's scales alike
SCALE_SHIFT = math.log(math.expm1(0.05))  # tfvae's: an output of 0 is a logistic scale of 0.05


def conv(c_in, c_out, k):
    # tfvae's model initializes its kernels glorot_uniform (biases 0): so here too.
    layer = nn.Conv2d(c_in, c_out, k, padding=k // 2)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class Block(nn.Module):
    """x + 1x1(a(3x3(a(3x3(a(1x1(a(x)))))))), a quarter of the width inside (VDVAE's)."""

    def __init__(self):
        super().__init__()
        inner = HIDDEN // 4
        self.convs = nn.ModuleList([conv(HIDDEN, inner, 1), conv(inner, inner, 3),
                                    conv(inner, inner, 3), conv(inner, HIDDEN, 1)])
        # The last convolution 1/BLOCKS times smaller in variance (Keras's VarianceScaling,
        # fan_in, truncated at two standard deviations), so the stack starts near the identity.
        std = math.sqrt(1 / BLOCKS / inner) / 0.87962566103423978
        nn.init.trunc_normal_(self.convs[-1].weight, std=std, a=-2 * std, b=2 * std)

    def forward(self, x):
        h = x
        for c in self.convs:
            h = c(F.gelu(h))
        return x + h


class VAE(nn.Module):
    """x [N, 3, 32, 32] -> stem, (blocks, pool) x 2, blocks -> a, flatten -> Dense to (mu, raw
    sigma) of q(z|x); z -> Dense -> [N, 32, 8, 8] -> blocks, (upsample, blocks) x 2 -> a -> a
    per-pixel (1x1) map to (loc, raw scale) of each channel's logistic. PyTorch's channels-first
    layout flattens in another order than Keras's channels-last: a permutation of the same
    weights."""

    def __init__(self, channels=3, side=32):
        super().__init__()
        self.low = low = side // 2 ** STAGES
        self.stem = conv(channels, HIDDEN, 3)
        self.down = nn.ModuleList(Block() for _ in range(BLOCKS))
        self.posterior = nn.Linear(low * low * HIDDEN, 2 * LATENT)
        self.from_z = nn.Linear(LATENT, low * low * HIDDEN)
        self.up = nn.ModuleList(Block() for _ in range(BLOCKS))
        self.head = conv(HIDDEN, 2 * channels, 1)
        for dense in (self.posterior, self.from_z):
            nn.init.xavier_uniform_(dense.weight)
            nn.init.zeros_(dense.bias)

    def forward(self, x):
        h = self.stem(x)
        # A new resolution every DEPTH blocks: halved on the way down, doubled on the way up.
        for i, block in enumerate(self.down):
            h = block(F.avg_pool2d(h, 2) if i % DEPTH == 0 and i else h)
        mu, raw = self.posterior(F.gelu(h).flatten(1)).chunk(2, dim=-1)
        sigma = F.softplus(raw) + MIN_SCALE
        z = mu + sigma * torch.randn_like(mu)
        h = self.from_z(z).view(-1, HIDDEN, self.low, self.low)
        for i, block in enumerate(self.up):
            h = block(F.interpolate(h, scale_factor=2, mode="nearest")
                      if i % DEPTH == 0 and i else h)
        params = self.head(F.gelu(h))
        # tfvae's head orders its outputs (channel, parameter): loc then raw scale per channel;
        # an output of 0 is a location of 0.5, the middle of [0, 1], and a scale of 0.05.
        params = params.view(len(x), -1, 2, *params.shape[2:])
        return (params[:, :, 0] + 0.5, F.softplus(params[:, :, 1] + SCALE_SHIFT) + MIN_SCALE, mu,
                sigma)


def log_prob(x, loc, scale):
    """log P(level of x) under the binned logistic, per value: tfvae's three terms that stay
    finite in every tail (its mixture of one component adds nothing to them)."""
    level = torch.clamp(torch.round(x * 255), 0, 255)
    centred = level * BIN - loc
    upper, lower = (centred + 0.5 * BIN) / scale, (centred - 0.5 * BIN) / scale
    first, last = level == 0, level == 255
    log_below_upper = torch.where(last, 0.0, -F.softplus(-upper))
    log_above_lower = torch.where(first, 0.0, -F.softplus(lower))
    log_width = torch.log(-torch.expm1(-BIN / scale))
    return log_below_upper + log_above_lower + torch.where(first | last, 0.0, log_width)


def loss_function(x, loc, scale, mu, sigma):
    reconstruction = log_prob(x, loc, scale).flatten(1).sum(-1)
    kl = (0.5 * (sigma ** 2 + mu ** 2 - 1) - torch.log(sigma)).sum(-1)
    return (kl - reconstruction).mean()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=4)
    args = torch_mnist.parse(parser)
    with np.load(args.data) as f:
        images = f["x_train"]
    # Channels first, PyTorch's layout for convolutions; the levels k/255 as tfvae reads them.
    x_train = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().float() / 255
    model = VAE(images.shape[-1], images.shape[1])
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rates, losses = [], []
    for _ in range(args.epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x_train))
        for i in range(0, len(x_train), BATCH):
            x = x_train[order[i:i + BATCH]]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_function(x, *model(x))
            loss.backward()
            optimizer.step()
        rates.append(len(x_train) / (time.perf_counter() - start))
        losses.append(float(loss.detach()))
    print(json.dumps({"name": "pytorch", "examples_per_second": rates, "last_loss": losses[-1],
                      "threads": torch.get_num_threads(), "parameters": parameters}))


if __name__ == "__main__":
    main()
