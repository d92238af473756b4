"""The registries of the layers users choose by name: decoder heads (``--likelihood``) and
network bodies (``--architecture``).

They live apart from the layers so that listing the names (``tfvae.options``, the command's
choices and ``--help``) imports no TensorFlow; a member's module is imported when it is first
used. A new member is one class and its decorator, e.g. ``@LIKELIHOODS.register("laplace")``.
"""

from tfvae.registry import Registry

# name -> a subclass of tfvae.layers.likelihoods.Likelihood
LIKELIHOODS = Registry("likelihood", {
    "bernoulli": "tfvae.layers.likelihoods:BernoulliLikelihood",
    "gaussian": "tfvae.layers.likelihoods:GaussianLikelihood",
    "normal": "tfvae.layers.likelihoods:NormalLikelihood",
    "poisson": "tfvae.layers.likelihoods:PoissonLikelihood",
    "negative_binomial": "tfvae.layers.likelihoods:NegativeBinomialLikelihood",
    "table": "tfvae.layers.table_likelihood:TableLikelihood",
    "discretized_logistic": "tfvae.layers.discretized:DiscretizedLogisticLikelihood",
})
# name -> a subclass of tfvae.layers.bodies.Body
BODIES = Registry("architecture", {
    "mlp": "tfvae.layers.bodies:MLP",
    "conv": "tfvae.layers.bodies:ConvEncoderBody",
    "resnet": "tfvae.layers.resnet:ResNetEncoderBody",
})


def unit_interval(likelihood):
    """Whether the likelihood named ``likelihood`` takes pixel values in [0, 1] only (a
    Bernoulli's): the data checks ask; False for a name not registered, which the model refuses."""
    return likelihood in LIKELIHOODS and LIKELIHOODS.get(likelihood).unit_interval


# What a likelihood's x may hold (its class's ``support``): values in [0, 1], any finite real
# value, non-negative integer counts, or the 256 levels k/255 of 8-bit pixels.
SUPPORTS = ("unit_interval", "real", "count", "eight_bit")


def likelihood_support(likelihood):
    """The ``support`` of the likelihood named ``likelihood``, one of ``SUPPORTS``: what the data
    checks let through; None for a name not registered, which the model refuses."""
    if likelihood not in LIKELIHOODS:
        return None
    return LIKELIHOODS.get(likelihood).support
