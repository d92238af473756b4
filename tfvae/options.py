"""The choices and defaults users set, by name, in one place that imports no TensorFlow.

The library checks its arguments against these lists and takes its defaults from here, and the
command line builds its flags from the same names, so ``tfvae --help`` answers at once and a
choice or default is never written twice.
"""

from tfvae.layers.registries import BODIES as _BODIES, LIKELIHOODS as _LIKELIHOODS

# -- models -------------------------------------------------------------------------------
# The built-in members of the registries (a member registered later is in the registry itself).
ARCHITECTURES = _BODIES.names()
LIKELIHOODS = _LIKELIHOODS.names()
KL_ESTIMATORS = ("analytic", "sampled")  # SGVB estimators B and A
OBJECTIVES = ("elbo", "iwae")
# The encoder's gradient: the bound's own, doubly reparameterized (IWAE), sticking the landing (ELBO)
GRADIENTS = ("standard", "dreg", "stl")
# The settings every latent-variable model shares (the paper's MNIST model, appendix C).
NETWORK_DEFAULTS = {
    "latent_dim": 20,
    "hidden": 500,
    "depth": 1,
    "activation": "tanh",
    "architecture": "mlp",
    "likelihood": "bernoulli",
    "gaussian_scale": "network",
    "kernel_initializer": "glorot_uniform",
    "weight_decay": 0.0,
}
DEFAULT_IMAGE_SHAPE = (28, 28, 1)
# The VAE's latent structure: p(z) N(0, I), a mixture of Gaussians or the VampPrior; q(z|x) a
# diagonal Gaussian or one followed by inverse autoregressive flow steps; one or two stochastic
# layers (Burda et al., 2015).
PRIORS = ("normal", "mog", "vamp")
POSTERIORS = ("gaussian", "iaf")
STOCHASTIC_LAYERS = (1, 2)
LATENT_DEFAULTS = {
    "prior": "normal",
    "prior_components": 10,
    "posterior": "gaussian",
    "flow_steps": 2,
    "stochastic_layers": 1,
}

# -- data ---------------------------------------------------------------------------------
# The built-in datasets, as their registry declares them (SOURCES.names() also lists the ones
# users register); importing it loads no TensorFlow.
from tfvae.data.sources import SOURCES as _SOURCES  # noqa: E402

DATASETS = _SOURCES.names()
BINARIZE_MODES = ("dynamic", "static", "none")

# -- training -----------------------------------------------------------------------------
OPTIMIZERS = ("adagrad", "adam")
STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
MIXED_PRECISION = ("float16", "bfloat16")
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}
TRAIN_DEFAULTS = {
    "epochs": 10,
    "batch_size": 100,
    "optimizer": "adagrad",
    "learning_rate": 0.01,
    "seed": 0,
    # Enough steps per call into TensorFlow that Python's share of a small model's step is small.
    "steps_per_execution": 32,
    # Write the test set's latent means for TensorBoard's Embedding Projector at the end.
    "projector": False,
}

# -- runs, evaluation, export -------------------------------------------------------------
CHECKPOINTS = ("model", "best", "last")
LOG_LIKELIHOOD_METHODS = ("importance", "hmc")
LOG_LIKELIHOOD_SAMPLES = 5000
EXPORT_LOG_LIKELIHOOD_SAMPLES = 1000

# -- applications and the paper -----------------------------------------------------------
QUANTIZERS = ("uniform", "gaussian")
INTERPOLATION_PATHS = ("linear", "spherical")
EXPERIMENTS = ("fig2", "fig3", "manifold")
BUDGETS = ("smoke", "cpu", "long", "paper")
