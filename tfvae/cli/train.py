"""``tfvae train``: train a model into a run directory."""

import time

from tfvae import options

_NET = options.NETWORK_DEFAULTS
_TRAIN = options.TRAIN_DEFAULTS


def register(subparsers):
    p = subparsers.add_parser("train", help="train a model into a run directory",
                              description="Train a model; RUN_DIR gets config.json, metrics.csv, "
                                          "TensorBoard logs, checkpoints and model.keras.")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="the run directory")
    p.add_argument("--model", default="vae",
                   help="model type: vae, autoencoder or wake_sleep (default: vae)")
    p.add_argument("--dataset", default="mnist",
                   help=f"{', '.join(options.DATASETS)} (embedded or local), tfds:NAME, or a path "
                        "to .npz/.npy/IDX/an image folder (default: mnist)")
    p.add_argument("--data-path", help="local file for datasets that need one (binarized_mnist)")
    p.add_argument("--binarize", choices=options.BINARIZE_MODES,
                   help="binarization of grey levels (default: the dataset's; dynamic for mnist)")
    p.add_argument("--train-examples", type=int, help="use the first N training examples")
    p.add_argument("--test-examples", type=int, help="use the first N test examples")
    p.add_argument("--latent-dim", type=int, default=_NET["latent_dim"])
    p.add_argument("--hidden", type=int, default=_NET["hidden"],
                   help=f"hidden units per layer (default: {_NET['hidden']})")
    p.add_argument("--depth", type=int, default=_NET["depth"],
                   help=f"hidden layers (default: {_NET['depth']})")
    p.add_argument("--activation", default=_NET["activation"],
                   help=f"hidden activation (default: {_NET['activation']})")
    p.add_argument("--architecture", choices=options.ARCHITECTURES, default=_NET["architecture"])
    p.add_argument("--likelihood", choices=options.LIKELIHOODS,
                   help="p(x|z) (default: the dataset's; gaussian for frey_face)")
    p.add_argument("--kl", choices=options.KL_ESTIMATORS, default="analytic",
                   help="SGVB estimator B (analytic KL) or A (sampled)")
    p.add_argument("--objective", choices=options.OBJECTIVES, default="elbo")
    p.add_argument("--num-samples", type=int, default=1, help="samples of z per datapoint (L or k)")
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
    speed = p.add_argument_group("speed and scale (see docs/distributed.md)")
    speed.add_argument("--strategy", choices=options.STRATEGIES, default="default",
                       help="tf.distribute strategy: one device, all local GPUs, the hosts in "
                            "TF_CONFIG, or a TPU (default: default); --batch-size is global")
    speed.add_argument("--mixed-precision", choices=options.MIXED_PRECISION,
                       help="compute in this dtype with float32 variables and ELBO (float16 adds "
                            "loss scaling); default: float32 throughout")
    speed.add_argument("--jit-compile", choices=tuple(options.JIT_COMPILE), default="auto",
                       help="XLA-compile each training step (auto: on for one device when the "
                            "run is long enough to repay compiling, off under a multi-replica "
                            "strategy)")
    speed.add_argument("--steps-per-execution", type=int, default=_TRAIN["steps_per_execution"],
                       metavar="N",
                       help="training steps per call into TensorFlow, rounded down to a divisor "
                            f"of the steps per epoch (default: {_TRAIN['steps_per_execution']})")
    p.set_defaults(func=run)


def run(args):
    from tfvae.runs import RunDirectory
    from tfvae.training import optimizer_steps, train

    model_config = {
        "latent_dim": args.latent_dim, "hidden": args.hidden, "depth": args.depth,
        "activation": args.activation, "architecture": args.architecture, "kl": args.kl,
        "objective": args.objective, "num_samples": args.num_samples,
    }
    if args.likelihood:
        model_config["likelihood"] = args.likelihood
    data_config = {"name": args.dataset}
    for key in ("data_path", "binarize", "train_examples", "test_examples"):
        if getattr(args, key) is not None:
            data_config[key] = getattr(args, key)
    start = time.perf_counter()
    model = train(args.out, model=args.model, model_config=model_config, data_config=data_config,
                  epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                  learning_rate=args.learning_rate, seed=args.seed, resume=args.resume,
                  overwrite=args.overwrite, verbose=0 if args.quiet else 1,
                  strategy=args.strategy, mixed_precision=args.mixed_precision,
                  jit_compile=options.JIT_COMPILE[args.jit_compile],
                  steps_per_execution=args.steps_per_execution)
    run_dir = RunDirectory(args.out)
    data = run_dir.read_config()["data"]
    print(f"tfvae train: run written to {args.out} (dataset {data['name']}, "
          f"binarization {data['binarize']}, {optimizer_steps(model)} steps, "
          f"{time.perf_counter() - start:.0f} s)")
    return 0
