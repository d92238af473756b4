"""``tfvae train``: train a model into a run directory."""

import sys
import time

from tfvae import options
from tfvae.data.sources import known_names
from tfvae.layers.registries import BODIES, LIKELIHOODS

_NET = options.NETWORK_DEFAULTS
_LATENT = options.LATENT_DEFAULTS
_TRAIN = options.TRAIN_DEFAULTS


_MODEL_FLAGS = ("latent_dim", "hidden", "depth", "activation", "architecture", "kl", "objective",
                "num_samples", "likelihood")
# The VAE's training controls and latent structure: passed only when given, so models without
# them take the flags.
_CONTROL_FLAGS = ("beta", "free_bits", "gradient", "prior", "prior_components", "posterior",
                  "flow_steps", "stochastic_layers")
_DATA_FLAGS = {"dataset": "name", "data_path": "data_path", "binarize": "binarize",
               "train_examples": "train_examples", "test_examples": "test_examples",
               "image_size": "image_size"}
_TRAIN_FLAGS = ("batch_size", "optimizer", "learning_rate", "seed")
_PARSERS = []


def register(subparsers):
    p = subparsers.add_parser("train", help="train a model into a run directory",
                              description="Train a model; RUN_DIR gets config.json, metrics.csv, "
                                          "TensorBoard logs, checkpoints and model.keras.")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="the run directory")
    p.add_argument("--model", default="vae",
                   help="model type: vae, autoencoder or wake_sleep (default: vae)")
    p.add_argument("--dataset", default="mnist",
                   help=f"a registered dataset ({', '.join(known_names())}), or a path to "
                        ".npz/.npy/IDX/an image folder (default: mnist)")
    p.add_argument("--data-path", help="local file for datasets that need one (binarized_mnist)")
    p.add_argument("--conditional", action="store_true",
                   help="a conditional VAE: train on (image, label) pairs of a dataset with "
                        "labels; sample with --label")
    p.add_argument("--binarize", choices=options.BINARIZE_MODES,
                   help="binarization of grey levels (default: the dataset's; dynamic for mnist)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                   help="resize every image to H x W (stretched, bilinear): needed for a folder "
                        "of images of several sizes; H and W divisible by 4 for --architecture "
                        "conv. Kept in config.json for every command that reads the run's data")
    p.add_argument("--train-examples", type=int, help="use the first N training examples")
    p.add_argument("--test-examples", type=int, help="use the first N test examples")
    p.add_argument("--latent-dim", type=int, default=_NET["latent_dim"])
    p.add_argument("--hidden", type=int, default=_NET["hidden"],
                   help=f"hidden units per layer (default: {_NET['hidden']})")
    p.add_argument("--depth", type=int, default=_NET["depth"],
                   help=f"hidden layers (default: {_NET['depth']})")
    p.add_argument("--activation", default=_NET["activation"],
                   help=f"hidden activation (default: {_NET['activation']})")
    p.add_argument("--architecture", choices=BODIES.names(), default=_NET["architecture"])
    p.add_argument("--likelihood", choices=LIKELIHOODS.names(),
                   help="p(x|z) (default: the dataset's; gaussian for frey_face)")
    p.add_argument("--kl", choices=options.KL_ESTIMATORS, default="analytic",
                   help="SGVB estimator B (analytic KL) or A (sampled)")
    p.add_argument("--objective", choices=options.OBJECTIVES, default="elbo")
    p.add_argument("--num-samples", type=int, default=1, help="samples of z per datapoint (L or k)")
    latent = p.add_argument_group("latent structure (vae)")
    latent.add_argument("--prior", choices=options.PRIORS, default=_LATENT["prior"],
                        help="p(z): N(0, I), a learned mixture of Gaussians or the VampPrior "
                             f"(default: {_LATENT['prior']}); mog and vamp train by --kl sampled")
    latent.add_argument("--prior-components", type=int, default=_LATENT["prior_components"],
                        metavar="K", help="mixture components or VampPrior pseudo-inputs "
                                          f"(default: {_LATENT['prior_components']})")
    latent.add_argument("--posterior", choices=options.POSTERIORS, default=_LATENT["posterior"],
                        help="q(z|x): a diagonal Gaussian, or one followed by inverse "
                             f"autoregressive flow steps (default: {_LATENT['posterior']})")
    latent.add_argument("--flow-steps", type=int, default=_LATENT["flow_steps"], metavar="N",
                        help=f"IAF steps (default: {_LATENT['flow_steps']})")
    latent.add_argument("--stochastic-layers", type=int, choices=options.STOCHASTIC_LAYERS,
                        default=_LATENT["stochastic_layers"],
                        help="x -> z1 -> z2 with 2 (Burda et al., 2015): z1 of --latent-dim, z2 "
                             "of half as many, the z1-z2 networks half as wide (default: "
                             f"{_LATENT['stochastic_layers']})")
    controls = p.add_argument_group("training controls (the elbo metric stays the true bound)")
    controls.add_argument("--beta", type=float, default=1.0,
                          help="weight of the KL term in the loss (beta-VAE; default: 1)")
    controls.add_argument("--kl-warmup-epochs", type=int, default=0, metavar="E",
                          help="epochs over which the KL weight rises linearly from 0 to beta "
                               "(default: 0, none)")
    controls.add_argument("--free-bits", type=float, default=0.0, metavar="NATS",
                          help="nats per latent dimension under which a dimension's KL does not "
                               "count in the loss (default: 0, none)")
    controls.add_argument("--gradient", choices=options.GRADIENTS, default="standard",
                          help="the encoder's gradient: the bound's own, doubly reparameterized "
                               "(dreg, with --objective iwae) or sticking the landing (stl, with "
                               "--kl sampled)")
    p.add_argument("--epochs", type=int, help=f"total epochs (default: {_TRAIN['epochs']})")
    p.add_argument("--batch-size", type=int, default=_TRAIN["batch_size"])
    p.add_argument("--optimizer", choices=options.OPTIMIZERS, default=_TRAIN["optimizer"])
    p.add_argument("--learning-rate", type=float, default=_TRAIN["learning_rate"])
    p.add_argument("--seed", type=int, default=_TRAIN["seed"])
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue a killed run from its last checkpoint")
    group.add_argument("--overwrite", action="store_true",
                       help="replace the tfvae run in RUN_DIR (only its own files)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--projector", action="store_true", default=_TRAIN["projector"],
                   help="at the end, write the test set's latent means, labels and images for "
                        "TensorBoard's Embedding Projector to RUN_DIR/tensorboard/projector "
                        "(kept for the run; --resume may add it)")
    speed = p.add_argument_group("speed and scale (see docs/distributed.md)")
    speed.add_argument("--strategy", choices=options.STRATEGIES, default="default",
                       help="tf.distribute strategy: one device, all local GPUs, the hosts in "
                            "TF_CONFIG, or a TPU (default: default); --batch-size is global")
    speed.add_argument("--mixed-precision", choices=options.MIXED_PRECISION,
                       help="compute in this dtype with float32 variables and ELBO (float16 adds "
                            "loss scaling); default: float32 throughout")
    speed.add_argument("--jit-compile", choices=tuple(options.JIT_COMPILE), default="auto",
                       help="XLA-compile each training step (auto: on for one device when the "
                            "run is long enough to repay compiling on this machine, as the "
                            "model's first run here measures and remembers; off under a "
                            "multi-replica strategy)")
    speed.add_argument("--steps-per-execution", type=int, default=_TRAIN["steps_per_execution"],
                       metavar="N",
                       help="training steps per call into TensorFlow, rounded to the nearest "
                            "divisor of the steps per epoch (default: "
                            f"{_TRAIN['steps_per_execution']})")
    p.set_defaults(func=run)
    _PARSERS.append(p)


def _given(args):
    """The dests of the flags given on the command line (not left at their defaults)."""
    tokens = [token.split("=", 1)[0] for token in args.argv if token.startswith("--")]
    return {action.dest for action in _PARSERS[0]._actions for token in tokens
            if any(option.startswith(token) for option in action.option_strings)}


def run(args):
    from tfvae.runs import RunDirectory
    from tfvae.training.pipeline import train

    # A new run takes every setting; a resumed one only those given, which must be the run's.
    explicit = _given(args)
    given = explicit if args.resume else set(vars(args)) - set(_CONTROL_FLAGS) | explicit
    model_config = {key: getattr(args, key) for key in (*_MODEL_FLAGS, *_CONTROL_FLAGS)
                    if key in given and getattr(args, key) is not None}
    data_config = {key: getattr(args, flag) for flag, key in _DATA_FLAGS.items()
                   if flag in given and getattr(args, flag) is not None}
    train_settings = {key: getattr(args, key) if key in given else None for key in _TRAIN_FLAGS}
    for key in ("kl_warmup_epochs", "conditional"):
        if key in explicit:
            train_settings[key] = getattr(args, key)
    start = time.perf_counter()
    train(args.out, model=args.model if "model" in given else None, model_config=model_config, data_config=data_config,
          epochs=args.epochs, resume=args.resume, overwrite=args.overwrite,
          verbose=0 if args.quiet else (1 if sys.stdout.isatty() else 2),
          strategy=args.strategy, mixed_precision=args.mixed_precision,
          jit_compile=options.JIT_COMPILE[args.jit_compile],
          steps_per_execution=args.steps_per_execution,
          projector=args.projector if "projector" in given else None, **train_settings)
    run_dir = RunDirectory(args.out)
    data, last = run_dir.read_config()["data"], run_dir.read_metrics()[-1]
    test = (f"test elbo {last['test_elbo']:.2f}" if last["test_elbo"] is not None
            else f"test reconstruction {last['test_reconstruction']:.2f}")
    print(f"tfvae train: {test} after {int(last['epoch'])} epochs, "
          f"{time.perf_counter() - start:.0f} s; run written to {args.out} (dataset "
          f"{data['name']}, binarization {data['binarize']})")
    return 0
