"""What a trained model is used for: features for downstream models (``features``), new samples
between and around known ones (``synthesis``), compression to latent codes (``compression``),
TensorBoard's Embedding Projector (``projector``), missing values filled in (``imputation``), and
the inputs and outputs of the commands that do these (``inputs``)."""

from tfvae.lazy import lazy_names

__getattr__, __dir__ = lazy_names(__name__, {}, ("features", "synthesis", "compression",
                                                 "projector", "imputation", "inputs"))
