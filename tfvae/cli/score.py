"""``tfvae score`` and ``tfvae threshold``: an anomaly score per example, and the threshold
that flags examples at a chosen false-positive rate (``tfvae.evaluation.scores``)."""

from tfvae.cli import add_out_argument, add_run_argument
from tfvae.evaluation.scores import DEFAULT_SAMPLES, SCORE_METHODS


def _add_scoring(p, checkpoint=True):
    add_run_argument(p, checkpoint=checkpoint)
    p.add_argument("--input", required=True,
                   help="the examples: an .npz with x (and y for a conditional model), or for a "
                        "run trained on a table, a table with its columns (.csv, .parquet)")
    p.add_argument("--method", choices=SCORE_METHODS,
                   help="minus the ELBO averaged over draws of z (fast), or minus the "
                        "importance-sampled log p(x) (tighter); default: the threshold's, else "
                        "elbo")
    p.add_argument("--num-samples", type=int,
                   help="draws of z per example (default: the threshold's, else "
                        + ", ".join(f"{n} for {m}" for m, n in DEFAULT_SAMPLES.items()) + ")")
    p.add_argument("--seed", type=int, help="the draws' seed (default: the threshold's, else 0)")
    p.add_argument("--batch-size", type=int, default=500)


def register(subparsers):
    p = subparsers.add_parser(
        "score", help="write an anomaly score per example (higher: more unusual) to a CSV",
        description="Write one row per example of --input to --out: its index (or id), its score "
                    "(minus the bound on log p(x)) and, when the run has a threshold (tfvae "
                    "threshold), whether the score is above it.")
    _add_scoring(p)
    add_out_argument(p, ".csv", what="scores")
    p.set_defaults(func=score)

    p = subparsers.add_parser(
        "threshold", help="calibrate the anomaly threshold of a run on normal examples",
        description="Score --input, examples of normal data the model was not trained on, and "
                    "keep in RUN_DIR/threshold.json the score above which at most "
                    "--false-positive-rate of them lie; tfvae score and the export flag "
                    "examples above it.")
    _add_scoring(p, checkpoint=False)  # the threshold is the final model's
    p.add_argument("--false-positive-rate", type=float, default=0.01,
                   help="the share of normal examples flagged (default: 0.01)")
    p.set_defaults(func=threshold)


def _scores(args, run, settings, checkpoint):
    """The scores of --input's examples, and their ids (a table's id column) or None."""
    from tfvae.applications.inputs import read_run_examples
    from tfvae.evaluation.scores import score

    model = run.load_model(checkpoint)
    x, y, ids = read_run_examples(args.input, run, model)
    return score(model, x, labels=y if model.conditional else None,
                 batch_size=args.batch_size, **settings), ids


def _settings(args, threshold=None):
    """The scoring method, draws and seed: those given, the others the ``threshold``'s (so that
    scores compare with it) or the defaults; and whether they are the threshold's."""
    given = {key: getattr(args, key) for key in ("method", "num_samples", "seed")
             if getattr(args, key) is not None}
    recorded = {} if threshold is None else {
        "method": threshold.method, "num_samples": threshold.num_samples, "seed": threshold.seed}
    settings = {"method": "elbo", "num_samples": None, "seed": 0, **recorded, **given}
    return settings, all(recorded.get(key) == value for key, value in given.items())


def score(args):
    import csv
    import io
    import sys

    from tfvae.runs import RunDirectory
    from tfvae.storage import check_output, write_text

    check_output(args.out, ".csv", overwrite=args.overwrite)
    run = RunDirectory(args.run_dir)
    threshold = run.read_threshold() if args.checkpoint == "model" else None
    settings, as_calibrated = _settings(args, threshold)
    if threshold is not None and not as_calibrated:
        print("tfvae score: warning: the scores are not the ones the run's threshold was "
              f"calibrated with ({threshold.method}, {threshold.num_samples} draws, seed "
              f"{threshold.seed}); the anomaly column is left out", file=sys.stderr)
        threshold = None
    scores, ids = _scores(args, run, settings, args.checkpoint)
    flags = None if threshold is None else threshold.flags(scores)
    text = io.StringIO()
    table = csv.writer(text, lineterminator="\n")
    table.writerow(["row" if ids is None else "id", "score"]
                   + ([] if flags is None else ["anomaly"]))
    table.writerows([row if ids is None else ids[row], repr(float(value))]
                    + ([] if flags is None else [int(flags[row])])
                    for row, value in enumerate(scores))
    write_text(args.out, text.getvalue(), overwrite=args.overwrite)
    flagged = "" if flags is None else f"; {int(flags.sum())} above the threshold"
    draws = settings["num_samples"] or DEFAULT_SAMPLES[settings["method"]]
    print(f"tfvae score: {len(scores)} scores ({settings['method']}, {draws} draws, seed "
          f"{settings['seed']}) written to {args.out}{flagged}")
    return 0


def threshold(args):
    from tfvae.evaluation.scores import calibrate_threshold
    from tfvae.runs import RunDirectory
    from tfvae.storage import exclusive_writer

    run = RunDirectory(args.run_dir)
    run.require_run()
    settings, _ = _settings(args)
    scores, _ = _scores(args, run, settings, "model")
    found = calibrate_threshold(scores, args.false_positive_rate, **settings)
    # The run's lock: a run still being trained is not calibrated meanwhile.
    with exclusive_writer(run.path, argument="run_dir", what="run directory"):
        run.write_threshold(found)
    print(f"tfvae threshold: {found.threshold:.4f} (scores above it are anomalies: at most "
          f"{found.false_positive_rate:g} of the {found.examples} normal examples), kept in "
          f"{run.threshold_path}")
    return 0
