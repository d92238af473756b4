"""The importance-sampled log p(x) of ``benchmarks/log_likelihood.py`` in plain PyTorch: the same
784-500-20 tanh VAE (freshly initialized: the cost does not depend on the weights), k samples per
image in chunks of ``--chunk-size``, ``--batch-size`` images per call, over the first
``--examples`` MNIST test images binarized once:

    log p(x) ~= log (1/k) sum_l p(x|z_l) p(z_l) / q(z_l|x),  z_l ~ q(z|x) = N(mu(x), diag(sigma^2)).

The first batch is timed apart and left out, as there. Prints one JSON line.

    python torch_log_likelihood.py [--examples 1000] [--samples 5000] [--threads N]

Needs only torch and numpy; reads the MNIST file that ships with tfvae.
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

LOG_2PI = math.log(2 * math.pi)


class VAE(nn.Module):
    def __init__(self, hidden=500, latent=20):
        super().__init__()
        self.enc = nn.Linear(784, hidden)
        self.enc_params = nn.Linear(hidden, 2 * latent)
        self.dec = nn.Linear(latent, hidden)
        self.dec_logits = nn.Linear(hidden, 784)

    def encode(self, x):
        loc, raw_scale = self.enc_params(torch.tanh(self.enc(x))).chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + 1e-4

    def log_px_z(self, z, x):
        """log p(x|z) [S, B] for z [S, B, D], x [B, 784]: minus the summed cross-entropy."""
        logits = self.dec_logits(torch.tanh(self.dec(z)))
        return -F.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none").sum(-1)


def gaussian_log_prob(z, loc, scale):
    return (-0.5 * ((z - loc) / scale) ** 2 - torch.log(scale) - 0.5 * LOG_2PI).sum(-1)


@torch.no_grad()
def log_px(model, x, samples, chunk_size, generator):
    loc, scale = model.encode(x)
    partial = []
    for start in range(0, samples, chunk_size):
        size = min(chunk_size, samples - start)
        eps = torch.randn((size, *loc.shape), generator=generator)
        z = loc + scale * eps
        log_w = (model.log_px_z(z, x) + (-0.5 * z ** 2 - 0.5 * LOG_2PI).sum(-1)
                 - gaussian_log_prob(z, loc, scale))
        partial.append(torch.logsumexp(log_w, dim=0))
    return torch.logsumexp(torch.stack(partial), dim=0) - math.log(samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--chunk-size", type=int, default=200,
                        help="samples per chunk (default: tfvae's for 100 images per call)")
    args = torch_mnist.parse(parser)
    grey = torch_mnist.grey("x_test", args.examples)
    x_test = torch.from_numpy((np.random.default_rng(0).random(grey.shape) < grey)
                              .astype(np.float32))
    batches = x_test.split(args.batch_size)
    model = VAE().eval()
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    log_px(model, batches[0], args.samples, args.chunk_size, generator)
    first = time.perf_counter() - start
    start = time.perf_counter()
    values = torch.cat([log_px(model, b, args.samples, args.chunk_size, generator)
                        for b in batches])
    seconds = time.perf_counter() - start
    print(json.dumps({"name": "pytorch", "examples": len(x_test), "samples": args.samples,
                      "seconds": seconds, "first_batch_seconds": first,
                      "mean_log_px": float(values.mean()), "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
