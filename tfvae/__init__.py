"""tfvae: Auto-Encoding Variational Bayes (Kingma & Welling, 2013) on TensorFlow and Keras 3."""

import os

# TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) is noise to users.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from tfvae.errors import InputError  # noqa: E402
from tfvae.model import VAE  # noqa: E402
from tfvae.likelihood import log_likelihood  # noqa: E402

__all__ = ["VAE", "InputError", "log_likelihood", "__version__"]
