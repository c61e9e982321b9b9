"""``tfcovid pretrain CONFIG.yaml|NAME [--set key=value ...] [--workdir DIR] [--max-epochs N]``.

Runs (or resumes) SSInfNet's self-supervised pre-training: the inpainting network against the
coach, in alternating phases (`tfcovid.training.pretraining.loop`). Writes checkpoints,
``history.json``, TensorBoard summaries, per-round best weights and, at the end,
``inpainter.keras``, ``coach.keras`` and ``pretrain.json``; ``tfcovid train`` with
``train.init_from`` set to the workdir fine-tunes from it. Example::

    tfcovid data phantom --out phantom_tiny.h5 --cases 6 --slices 8 --size 96 --unlabelled 2
    tfcovid pretrain ssinfnet_phantom_tiny_pretrain --workdir runs/ssinfnet_tiny_pretrain
"""

from __future__ import annotations

from tfcovid.cli.train import add_experiment_arguments


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain", help="SSInfNet self-supervised pre-training with the coach",
        description="Pre-train an inpainting network against the coach network (SSInfNet): "
                    "alternating network and coach phases; resumes from the workdir's last "
                    "checkpoint.")
    add_experiment_arguments(parser)
    parser.add_argument("--max-epochs", type=int, metavar="N",
                        help="stop after N epochs of this call (resume later)")
    parser.set_defaults(run=run)


def format_summary(workdir: str, summary: dict) -> str:
    """The lines printed after pre-training."""

    def number(value) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    lines = [f"workdir         {workdir}",
             f"epochs          {summary['epochs_done']} of {summary['total_epochs']}",
             f"val rec before  {number(summary['reconstruction_before'])}"]
    if summary["finished"]:
        lines += [f"val rec after   {number(summary['reconstruction_after'])} "
                  f"({summary['weights']} weights)",
                  "networks        inpainter.keras, coach.keras"]
    else:
        lines.append("not finished    run the same command again to resume")
    return "\n".join(lines)


def run(args) -> None:
    # Imported here so that `tfcovid --help` does not load TensorFlow.
    from tfcovid import config
    from tfcovid.training.pretraining import loop

    experiment = config.load_experiment(args.config, args.overrides)
    workdir = args.workdir if args.workdir is not None else experiment.workdir
    summary = loop.pretrain(experiment, workdir, progress=not args.quiet,
                            max_epochs=args.max_epochs)
    print(format_summary(str(workdir), summary))
