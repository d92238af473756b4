"""The layers models are built from: network bodies (``bodies``), distribution heads
(``likelihoods``), the encoder and decoder around them (``coders``), learned priors
(``priors``), inverse autoregressive flows (``flows``) and the two-layer hierarchy
(``hierarchy``). Each is a Keras layer registered for serialization. The bodies and the heads
users choose by name are registered in ``registries``, which imports no TensorFlow."""

from tfvae.lazy import lazy_names

__getattr__, __dir__ = lazy_names(__name__, {}, ("bodies", "likelihoods", "coders", "priors",
                                                 "flows", "hierarchy", "registries"))
