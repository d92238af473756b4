"""The choices and defaults users set, by name, in one place that imports no TensorFlow.

The library checks its arguments against these lists and takes its defaults from here, and the
command line builds its flags from the same names, so ``tfvae --help`` answers at once and a
choice or default is never written twice.
"""

import dataclasses

from tfvae.errors import arg
from tfvae.layers.registries import BODIES as _BODIES, LIKELIHOODS as _LIKELIHOODS

# -- models -------------------------------------------------------------------------------
# The built-in members of the registries (a member registered later is in the registry itself).
ARCHITECTURES = _BODIES.names()
LIKELIHOODS = _LIKELIHOODS.names()
KL_ESTIMATORS = ("analytic", "sampled")  # SGVB estimators B and A
OBJECTIVES = ("elbo", "iwae")
# The encoder's gradient: the bound's own, doubly reparameterized (IWAE), sticking the landing (ELBO)
GRADIENTS = ("standard", "dreg", "stl")
DEFAULT_IMAGE_SHAPE = (28, 28, 1)
# The VAE's latent structure: p(z) N(0, I), a mixture of Gaussians or the VampPrior; q(z|x) a
# diagonal Gaussian or one followed by inverse autoregressive flow steps; one or two stochastic
# layers (Burda et al., 2015).
PRIORS = ("normal", "mog", "vamp")
POSTERIORS = ("gaussian", "iaf")
STOCHASTIC_LAYERS = (1, 2)
# Latent groups of the top-down hierarchy (resnet body): enough for VDVAE-sized models.
MAX_LATENT_GROUPS = 64

# -- data ---------------------------------------------------------------------------------
# The built-in datasets, as their registry declares them (SOURCES.names() also lists the ones
# users register); importing it loads no TensorFlow.
from tfvae.data.sources import SOURCES as _SOURCES  # noqa: E402

DATASETS = _SOURCES.names()
BINARIZE_MODES = ("dynamic", "static", "none")
# Held in memory as arrays, or streamed from disk (tfvae.data.streams); "auto" streams large data.
STORAGES = ("auto", "memory", "stream")

# -- training -----------------------------------------------------------------------------
OPTIMIZERS = ("adagrad", "adam", "adamw", "adamax", "sgd")
LEARNING_RATE_SCHEDULES = ("constant", "exponential", "iwae", "cosine")
STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
MIXED_PRECISION = ("float16", "bfloat16")
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}


# -- the settings of a run ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting of ``train``: its Python name (the argument, and its key in config.json's
    ``section``), type, default and choices, and the help the command line shows for it.

    ``section``: ``"model"`` (a model's constructor argument), ``"data"`` (``load_dataset``'s),
    ``"train"`` (how the run trains, kept in config.json) or ``"run"`` (how this one call runs).
    A default of None is the data's or the model's own, as ``help`` says."""

    name: str
    section: str
    default: object = None
    type: type = str
    choices: tuple = None
    help: str = None
    metavar: object = None
    nargs: object = None
    group: str = None


_LATENT = "latent structure (vae)"
_CONTROLS = "training controls (the elbo metric stays the true bound)"
_OPTIMIZATION = "optimization"
_SPEED = "speed and scale (see docs/distributed.md)"

SETTINGS = {s.name: s for s in (
    # what is trained, on what
    Setting("model", "run", "vae", help="the model type, a name from the model registry"),
    Setting("name", "data", "mnist", help="a registered dataset, or a path to .npz/.npy/IDX/an "
            "image folder"),
    Setting("data_path", "data", help="local file for datasets that need one (binarized_mnist)"),
    Setting("conditional", "train", False, bool, help="a conditional VAE: train on (image, "
            f"label) pairs of a dataset with labels; sample with {arg('label')}"),
    Setting("binarize", "data", choices=BINARIZE_MODES, help="binarization of grey levels "
            "(default: the dataset's; dynamic for mnist)"),
    Setting("image_size", "data", type=int, nargs=2, metavar=("H", "W"), help="resize every "
            "image to H x W (stretched, bilinear): needed for a folder of images of several "
            f"sizes; H and W divisible by 4 for {arg('architecture', 'conv')} and resnet. Kept in "
            "config.json for "
            "every command that reads the run's data"),
    Setting("label_column", "data", metavar="NAME",
            help="a table's column of class labels (not a feature)"),
    Setting("exclude_columns", "data", nargs="+", metavar="NAME",
            help="a table's columns that are no feature (an id column is left out anyway)"),
    Setting("column_types", "data", nargs="+", metavar="NAME=TYPE",
            help="a table's column types where the inferred ones are not meant: real, binary, "
                 "count or categorical"),
    Setting("allow_missing", "data", False, bool, help="NaN (an empty cell of a table) is a "
            f"missing value, left out of the bound (MIWAE with {arg('objective', 'iwae')}), not a "
            "data "
            "error"),
    Setting("train_split", "data", metavar="SPLIT", help="a TFDS dataset's training split, any "
            "TFDS split expression such as train[:90%%] (default: train)"),
    Setting("test_split", "data", metavar="SPLIT", help="a TFDS dataset's test split, such as "
            "train[90%%:] (default: test)"),
    Setting("storage", "data", "auto", choices=STORAGES, help="hold the examples in memory or "
            "stream them from disk (an image folder, an .npy file, a prepared dataset); by "
            "default, stream those above 1 GB as float32"),
    Setting("train_examples", "data", type=int, help="use the first N training examples"),
    Setting("test_examples", "data", type=int, help="use the first N test examples"),
    # the networks: the settings every latent-variable model shares (the paper's MNIST model,
    # appendix C)
    Setting("latent_dim", "model", 20, int, help="latent dimensions"),
    Setting("hidden", "model", 500, int, help="hidden units per layer"),
    Setting("depth", "model", 1, int, help="hidden layers"),
    Setting("activation", "model", "tanh", help="hidden activation"),
    Setting("architecture", "model", "mlp", choices=ARCHITECTURES, help="the network body"),
    Setting("likelihood", "model", "bernoulli", choices=LIKELIHOODS,
            help="p(x|z) (default: the dataset's; gaussian for frey_face)"),
    Setting("logistic_components", "model", 1, int, metavar="K",
            help=f"logistics per value of {arg('likelihood', 'discretized_logistic')} (8-bit "
                 "pixels; 10 in PixelCNN++ and VDVAE)"),
    Setting("kl", "model", "analytic", choices=KL_ESTIMATORS,
            help="SGVB estimator B (analytic KL) or A (sampled)"),
    Setting("objective", "model", "elbo", choices=OBJECTIVES),
    Setting("num_samples", "model", 1, int, help="samples of z per datapoint (L or k)"),
    Setting("prior", "model", "normal", choices=PRIORS, group=_LATENT,
            help="p(z): N(0, I), a learned mixture of Gaussians or the VampPrior; mog and vamp "
                 f"train by {arg('kl', 'sampled')}"),
    Setting("prior_components", "model", 10, int, metavar="K", group=_LATENT,
            help="mixture components or VampPrior pseudo-inputs"),
    Setting("posterior", "model", "gaussian", choices=POSTERIORS, group=_LATENT,
            help="q(z|x): a diagonal Gaussian, or one followed by inverse autoregressive flow "
                 "steps"),
    Setting("flow_steps", "model", 2, int, metavar="N", group=_LATENT, help="IAF steps"),
    Setting("stochastic_layers", "model", 1, int, choices=STOCHASTIC_LAYERS, group=_LATENT,
            help=f"x -> z1 -> z2 with 2 (Burda et al., 2015): z1 of {arg('latent_dim')}, z2 of half as "
                 "many, the z1-z2 networks half as wide"),
    Setting("latent_groups", "model", 1, int, metavar="L", group=_LATENT,
            help=f"a hierarchy of L latent groups in the top-down form (NVAE, VDVAE) with "
                 f"{arg('architecture', 'resnet')}: each group a map of {arg('latent_dim')} "
                 f"channels at one of its resolutions, q(z_i|x, z_<i) relative to "
                 f"p(z_i|z_<i); 1: one latent (default; at most {MAX_LATENT_GROUPS})"),
    Setting("beta", "model", 1.0, float, group=_CONTROLS,
            help="weight of the KL term in the loss (beta-VAE)"),
    Setting("kl_warmup_epochs", "train", 0, int, metavar="E", group=_CONTROLS,
            help="epochs over which the KL weight rises linearly from 0 to beta (0: none)"),
    Setting("free_bits", "model", 0.0, float, metavar="NATS", group=_CONTROLS,
            help="nats per latent dimension under which a dimension's KL does not count in "
                 "the loss (0: none)"),
    Setting("gradient", "model", "standard", choices=GRADIENTS, group=_CONTROLS,
            help="the encoder's gradient: the bound's own, doubly reparameterized (dreg, with "
                 f"{arg('objective', 'iwae')}) or sticking the landing (stl, with {arg('kl', 'sampled')})"),
    Setting("standardize", "train", "auto", choices=("auto", "on", "off"),
            help="standardize each feature by the training split's mean and standard deviation "
                 "inside the model, which takes and gives data as it is (auto: on for vectors)"),
    # the optimization
    Setting("epochs", "train", 10, int, help="total epochs"),
    Setting("batch_size", "train", 100, int),
    Setting("optimizer", "train", "adagrad", choices=OPTIMIZERS, group=_OPTIMIZATION,
            help="sgd has momentum 0.9; from Python also a keras.optimizers.Optimizer object"),
    Setting("learning_rate", "train", 0.01, float, group=_OPTIMIZATION),
    Setting("learning_rate_schedule", "train", "constant", choices=LEARNING_RATE_SCHEDULES,
            group=_OPTIMIZATION, help="exponential falls by 10x over the run; iwae is Burda "
            "et al.'s (2015): 3^i epochs at the rate times 10^(-i/7), i = 0..7 (theirs is "
            f"0.001 with {arg('optimizer', 'adam')}); cosine falls to 0 at the run's end"),
    Setting("learning_rate_warmup_epochs", "train", 0, int, metavar="E", group=_OPTIMIZATION,
            help="epochs over which the learning rate rises linearly from 0 (0: none)"),
    Setting("clip_norm", "train", None, float, metavar="N", group=_OPTIMIZATION,
            help="clip each step's gradients to global norm N (default: none)"),
    Setting("skip_norm", "train", None, float, metavar="N", group=_OPTIMIZATION,
            help="skip each step whose gradients' global norm is above N (or not finite): no "
                 "update, counted in metrics.csv's skipped_steps (default: none; one device)"),
    Setting("ema", "train", None, float, metavar="DECAY", group=_OPTIMIZATION,
            help="keep an exponential moving average of the weights with decay DECAY in (0, 1): "
                 "each epoch's test bound, best.keras and model.keras (and so evaluate and "
                 "export) use it; last.keras keeps the weights as trained (default: none)"),
    Setting("early_stopping_patience", "train", None, int, metavar="EPOCHS",
            group=_OPTIMIZATION, help="stop when the test bound has not improved for EPOCHS "
            "epochs; model.keras then holds the best epoch's weights (default: never)"),
    Setting("seed", "train", 0, int),
    Setting("projector", "train", False, bool, help="at the end, write the test set's latent "
            "means, labels and images for TensorBoard's Embedding Projector to "
            f"RUN_DIR/tensorboard/projector (kept for the run; {arg('resume')} may add it)"),
    Setting("mlflow", "run", metavar="URI", help="log the run to this MLflow tracking server "
            "(http://HOST:PORT, or any MLflow tracking URI; needs tfvae[tracking]): its settings "
            "as parameters, each epoch's metrics, config.json, metrics.csv, the final pictures "
            f"and model.keras as artifacts. Kept for the run: {arg('resume')} continues the same "
            "MLflow run"),
    # how this call runs
    Setting("strategy", "run", "default", choices=STRATEGIES, group=_SPEED,
            help="tf.distribute strategy: one device, all local GPUs, the hosts in TF_CONFIG, "
                 f"or a TPU; {arg('batch_size')} is global"),
    Setting("mixed_precision", "run", choices=MIXED_PRECISION, group=_SPEED,
            help="compute in this dtype with float32 variables and ELBO (float16 adds loss "
                 "scaling); default: float32 throughout"),
    Setting("jit_compile", "run", "auto", choices=tuple(JIT_COMPILE), group=_SPEED,
            help="XLA-compile each training step (auto: on for one device when the run is long "
                 "enough to repay compiling on this machine, as the model's first run here "
                 "measures and remembers; off under a multi-replica strategy)"),
    Setting("xla_measure_seconds", "run", 60.0, float, metavar="S", group=_SPEED,
            help=f"the most seconds the timing of XLA for {arg('jit_compile', 'auto')} may take "
                 "(checked between its fits); past it the run trains uncompiled, and a run "
                 "shorter than S uncompiled is not timed compiled"),
    # Enough steps per call into TensorFlow that Python's share of a small model's step is small.
    Setting("steps_per_execution", "run", 32, int, metavar="N", group=_SPEED,
            help="training steps per call into TensorFlow, rounded to the nearest divisor of "
                 "the steps per epoch"),
)}


def defaults(*names):
    """``{name: default}`` of the settings ``names``."""
    return {name: SETTINGS[name].default for name in names}


NETWORK_DEFAULTS = {
    **defaults("latent_dim", "hidden", "depth", "activation", "architecture", "likelihood",
               "logistic_components"),
    "gaussian_scale": "network",
    "kernel_initializer": "glorot_uniform",
    "weight_decay": 0.0,
}
# The VAE's objective, training controls and latent structure.
VAE_DEFAULTS = defaults("kl", "objective", "num_samples", "beta", "free_bits", "gradient")
LATENT_DEFAULTS = defaults("prior", "prior_components", "posterior", "flow_steps",
                           "stochastic_layers", "latent_groups")
TRAIN_DEFAULTS = defaults("epochs", "batch_size", "optimizer", "learning_rate", "seed",
                          "steps_per_execution", "projector")


def train_arguments(settings):
    """``train``'s keyword arguments for ``settings`` ({name: value} of ``SETTINGS``): the model
    and data settings as ``model_config`` and ``data_config``, the others under their own names
    (``jit_compile`` by its name in ``JIT_COMPILE``)."""
    of = {section: {} for section in ("model", "data", "train", "run")}
    for name, value in settings.items():
        of[SETTINGS[name].section][name] = value
    if "jit_compile" in of["run"]:
        of["run"]["jit_compile"] = JIT_COMPILE[of["run"]["jit_compile"]]
    return {"model_config": of["model"], "data_config": of["data"], **of["train"], **of["run"]}


# -- runs, evaluation, export -------------------------------------------------------------
CHECKPOINTS = ("model", "best", "last")
LOG_LIKELIHOOD_METHODS = ("importance", "hmc")
LOG_LIKELIHOOD_SAMPLES = 5000
EXPORT_LOG_LIKELIHOOD_SAMPLES = 1000
# Draws of z per row when imputing (tfvae.applications.imputation), as many as the export's
# importance-sampled log p(x) takes.
IMPUTE_SAMPLES = EXPORT_LOG_LIKELIHOOD_SAMPLES

# -- applications and the paper -----------------------------------------------------------
QUANTIZERS = ("uniform", "gaussian")
INTERPOLATION_PATHS = ("linear", "spherical")
EXPERIMENTS = ("fig2", "fig3", "manifold")
BUDGETS = ("smoke", "cpu", "long", "paper")
