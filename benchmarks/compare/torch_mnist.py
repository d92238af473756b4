"""What the PyTorch-side scripts share: the ``--threads`` flag, the seed, and MNIST as float32
grey levels [N, 784] in [0, 1], read from the file that ships with tfvae (torch and numpy only)."""

from pathlib import Path

import numpy as np
import torch

MNIST = Path(__file__).resolve().parents[2] / "tfvae" / "data" / "packaged" / "mnist.npz"


def parse(parser):
    """``parser``'s arguments, with ``--threads`` (PyTorch's intra-op threads; its default
    otherwise) applied and the seed set to 0."""
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return args


def grey(split, count=None):
    """The first ``count`` images of ``split`` ("x_train" or "x_test"), [N, 784] float32."""
    with np.load(MNIST) as f:
        return f[split][:count].reshape(-1, 784).astype(np.float32) / 255
