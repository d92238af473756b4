"""``tfvae train``: train a model into a run directory."""


def register(subparsers):
    p = subparsers.add_parser("train", help="train a model into a run directory",
                              description="Train a model; RUN_DIR gets config.json, metrics.csv, "
                                          "TensorBoard logs, checkpoints and model.keras.")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="the run directory")
    p.add_argument("--model", default="vae", help="model type (default: vae)")
    p.add_argument("--dataset", default="mnist",
                   help="mnist (embedded), binarized_mnist, frey_face, tfds:NAME, or a path to "
                        ".npz/.npy/IDX/an image folder (default: mnist)")
    p.add_argument("--data-path", help="local file for datasets that need one (binarized_mnist)")
    p.add_argument("--binarize", choices=["dynamic", "static", "none"],
                   help="binarization of grey levels (default: the dataset's; dynamic for mnist)")
    p.add_argument("--train-examples", type=int, help="use the first N training examples")
    p.add_argument("--test-examples", type=int, help="use the first N test examples")
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--hidden", type=int, default=500, help="hidden units per layer (default: 500)")
    p.add_argument("--depth", type=int, default=1, help="hidden layers (default: 1)")
    p.add_argument("--activation", default="tanh", help="hidden activation (default: tanh)")
    p.add_argument("--architecture", choices=["mlp", "conv"], default="mlp")
    p.add_argument("--likelihood", choices=["bernoulli", "gaussian"],
                   help="p(x|z) (default: the dataset's; gaussian for frey_face)")
    p.add_argument("--kl", choices=["analytic", "sampled"], default="analytic",
                   help="SGVB estimator B (analytic KL) or A (sampled)")
    p.add_argument("--objective", choices=["elbo", "iwae"], default="elbo")
    p.add_argument("--num-samples", type=int, default=1, help="samples of z per datapoint (L or k)")
    p.add_argument("--epochs", type=int, help="total epochs (default: 10)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--optimizer", choices=["adagrad", "adam"], default="adagrad")
    p.add_argument("--learning-rate", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue a killed run from its last checkpoint")
    group.add_argument("--overwrite", action="store_true", help="replace a run in RUN_DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    speed = p.add_argument_group("speed and scale (see docs/distributed.md)")
    speed.add_argument("--strategy", choices=["default", "mirrored", "multiworker", "tpu"],
                       default="default",
                       help="tf.distribute strategy: one device, all local GPUs, the hosts in "
                            "TF_CONFIG, or a TPU (default: default); --batch-size is global")
    speed.add_argument("--mixed-precision", choices=["float16", "bfloat16"],
                       help="compute in this dtype with float32 variables and ELBO (float16 adds "
                            "loss scaling); default: float32 throughout")
    speed.add_argument("--jit-compile", choices=["auto", "on", "off"], default="auto",
                       help="XLA-compile each training step (auto: on for one device when the "
                            "run is long enough to repay compiling, off under a multi-replica "
                            "strategy)")
    speed.add_argument("--steps-per-execution", type=int, default=32, metavar="N",
                       help="training steps per call into TensorFlow, rounded down to a divisor "
                            "of the steps per epoch (default: 32)")
    p.set_defaults(func=run)


def run(args):
    from tfvae.training import train

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
    model = train(args.out, model=args.model, model_config=model_config, data_config=data_config,
          epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
          learning_rate=args.learning_rate, seed=args.seed, resume=args.resume,
          overwrite=args.overwrite, verbose=0 if args.quiet else 1, strategy=args.strategy,
          mixed_precision=args.mixed_precision,
          jit_compile={"auto": "auto", "on": True, "off": False}[args.jit_compile],
          steps_per_execution=args.steps_per_execution)
    from tfvae.training import optimizer_steps, read_json

    data = read_json(f"{args.out}/config.json")["data"]
    print(f"tfvae train: run written to {args.out} (dataset {data['name']}, "
          f"binarization {data['binarize']}, {optimizer_steps(model)} steps)")
    return 0
