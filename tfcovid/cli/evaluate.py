"""``tfcovid evaluate --model RUN_DIR [--data FILE.h5] [--split ...] [--weights ...] [--out ...]``.

Evaluates a trained single-class Inf-Net run (`tfcovid.evaluation.evaluate_run`): by default
on the test part of the run's own case split with its best-validation weights; ``--data``
evaluates every labelled case of another store. Prints the per-slice summary table and the
toolbox threshold sweep; ``--out`` writes them, the per-slice rows and the settings as JSON.
Example::

    tfcovid evaluate --model runs/phantom_tiny --split val --out runs/phantom_tiny/val.json
"""

from __future__ import annotations

# tfcovid.evaluation.SPLITS and WEIGHTS, spelled out: importing it loads TensorFlow.
SPLITS = ("test", "val", "train", "all")
WEIGHTS = ("best", "final")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a trained run on held-out slices",
        description="Evaluate a trained single-class run: per-slice Dice, IoU, sensitivity, "
                    "specificity, precision, AUC, S-alpha, E-phi, weighted F and MAE (mean ± "
                    "1.96 SE), and the Inf-Net toolbox threshold sweep.")
    parser.add_argument("--model", required=True, metavar="RUN_DIR",
                        help="workdir of a finished training run")
    parser.add_argument("--data", metavar="FILE.h5",
                        help="evaluate every labelled case of this store instead of the run's")
    parser.add_argument("--split", choices=SPLITS,
                        help="part of the run's case split (default: test; all with --data)")
    parser.add_argument("--weights", choices=WEIGHTS, default="best",
                        help="best validation epoch or final network (default: best)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="probability threshold of the overlap metrics (default: 0.5)")
    parser.add_argument("--out", metavar="FILE.json", help="write the results as JSON")
    parser.set_defaults(run=run)


def run(args) -> None:
    # Imported here so that `tfcovid --help` does not load TensorFlow.
    from tfcovid import evaluation
    from tfcovid.errors import ConfigError
    from tfcovid.metrics import format_table

    if args.data is not None and args.split not in (None, "all"):
        raise ConfigError(f"--split {args.split}: --data evaluates the whole store; leave out "
                          f"--split")
    result = evaluation.evaluate_run(args.model, store=args.data, split=args.split,
                                     weights=args.weights, threshold=args.threshold,
                                     progress=not args.quiet)
    if args.out is not None:
        evaluation.write_json(result, args.out)
    settings = result["settings"]
    print(f"{settings['store']}: {settings['split']} part, {settings['num_slices']} slices of "
          f"{settings['num_cases']} cases, {settings['weights']} weights")
    print(format_table(result["summary"]))
    print(format_table(result["threshold_sweep"]))
