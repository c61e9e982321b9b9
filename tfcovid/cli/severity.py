"""``tfcovid severity fit|evaluate --model RUN_DIR [--data FILE.h5] [--cases ...]``, ``lung-store``.

Case severity from a trained run (`tfcovid.severity_evaluation`): each case's infected fraction
of lung is predicted with the run's network, then classed 0 mild, 1 severe, 2 critical by two
thresholds.

- ``fit`` fits the thresholds on cases with severity labels (default: the run's train part) by
  maximising micro F1 and stores them in ``RUN_DIR/severity_thresholds.json``, which
  ``tfcovid predict`` and ``severity evaluate`` then use;
- ``evaluate`` classifies cases (default: the run's test part) with the stored thresholds, else
  the reference (0.01, 0.5), and prints micro F1 / precision / recall (scikit-learn,
  ``average="micro"``), the confusion matrix and per-class scores; ``--json`` writes them with
  the per-case rows.

``--data`` defaults to the run's own store; ``--cases`` takes ``train``, ``val`` or ``test``
(parts of the run's split, its own store only), ``all``, or case ids; ``--lung-model`` finds
the lungs with a learned lung segmenter (`tfcovid.lung_model`), whose training store
``lung-store`` writes. Example::

    tfcovid severity fit --model demo_out/run --data demo_out/phantom.h5
    tfcovid severity evaluate --model demo_out/run --data demo_out/phantom.h5 --cases test
"""

from __future__ import annotations

# tfcovid.inference.WEIGHTS, spelled out: importing it loads TensorFlow.
WEIGHTS = ("best", "final")
SEVERITY_NAMES = ("mild", "severe", "critical")  # tfcovid.data.store.SEVERITY_NAMES


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "severity", help="fit and evaluate severity classes of a trained run",
        description="Fit a run's severity thresholds on cases with severity labels, or evaluate "
                    "its severity classes (micro F1, confusion matrix, per-class scores).")
    actions = parser.add_subparsers(dest="severity_command", metavar="ACTION", required=True)
    for name, default, description in (
            ("fit", "train", "fit the thresholds on cases by maximising micro F1 and store them "
                             "in RUN_DIR/severity_thresholds.json"),
            ("evaluate", "test", "classify cases with the run's thresholds and score them "
                                 "against their severity labels")):
        action = actions.add_parser(name, help=description, description=description + ".")
        action.add_argument("--model", required=True, metavar="RUN_DIR",
                            help="workdir of a finished training run")
        action.add_argument("--data", metavar="FILE.h5",
                            help="store with case severities (default: the run's store)")
        action.add_argument("--cases", nargs="+", default=[default], metavar="CASES",
                            help=f"train, val or test (parts of the run's split), all, or case "
                                 f"ids (default: {default})")
        action.add_argument("--weights", choices=WEIGHTS, default="best",
                            help="best validation epoch or final network (default: best)")
        action.add_argument("--batch-size", type=int, default=8,
                            help="slices per forward pass (default: 8)")
        action.add_argument("--lung-model", metavar="LUNG_RUN_DIR",
                            help="run trained on lung masks (see lung-store) to find every "
                                 "case's lungs (default: stored masks, else the classical "
                                 "segmenter)")
        if name == "evaluate":
            action.add_argument("--json", metavar="OUT.json",
                                help="write the scores and per-case rows as JSON")
        action.set_defaults(run=run_fit if name == "fit" else run_evaluate)
    lung_store = actions.add_parser(
        "lung-store", help="make a store whose labels are the lung masks, to train a lung model",
        description="Write the cases of SOURCE that have lung masks into TARGET with the lung "
                    "mask as label (1 lung), to train a learned lung segmenter on.")
    lung_store.add_argument("source", metavar="SOURCE.h5", help="store with lung masks")
    lung_store.add_argument("target", metavar="TARGET.h5", help="store to write")
    lung_store.add_argument("--overwrite", action="store_true", help="replace TARGET")
    lung_store.set_defaults(run=run_lung_store)


def run_fit(args) -> None:
    # Imported here so that `tfcovid --help` does not load TensorFlow.
    from tfcovid import severity_evaluation

    result = severity_evaluation.fit_severity_thresholds(
        args.model, args.data, _cases(args), args.weights, _batch_size(args),
        progress=not args.quiet, lung_run=args.lung_model)
    fit = result["fit"]
    low, high = result["thresholds"]
    print(f"{result['path']}: thresholds ({low:.4g}, {high:.4g}) fitted on "
          f"{_describe(fit['cases'], fit['case_ids'], fit['store'], fit['lung_sources'])}")
    print(f"micro F1 {fit['scores']['f1_micro']:.3f} on these cases "
          f"(reference (0.01, 0.5): {fit['reference_scores']['f1_micro']:.3f})")
    _print_skipped(fit["skipped"])


def run_evaluate(args) -> None:
    import json
    import os
    from pathlib import Path

    from tfcovid import severity_evaluation

    result = severity_evaluation.evaluate_severity_run(
        args.model, args.data, _cases(args), args.weights, _batch_size(args),
        progress=not args.quiet, lung_run=args.lung_model)
    settings, scores = result["settings"], result["scores"]
    stored = settings["thresholds"]
    low, high = stored["values"]
    case_ids = [row["case_id"] for row in result["rows"]]
    print(f"{_describe(settings['cases'], case_ids, settings['store'], settings['lung_sources'])}"
          f"; {settings['weights']} weights; {stored['source']} thresholds ({low:.4g}, "
          f"{high:.4g})" + (f" from {stored['path']}" if stored["path"] else ""))
    print(format_scores(scores))
    _print_skipped(settings["skipped"])
    if args.json is not None:
        path = Path(args.json)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(result, indent=1, allow_nan=False), encoding="utf-8")
        os.replace(temporary, path)


def run_lung_store(args) -> None:
    from tfcovid import lung_model

    count = lung_model.write_lung_store(args.source, args.target, overwrite=args.overwrite)
    print(f"{args.target}: {count} cases with their lung masks as labels")


def format_scores(scores: dict) -> str:
    """Micro scores, the confusion matrix and per-class scores as aligned text."""
    lines = [f"micro F1 {scores['f1_micro']:.3f}  precision {scores['precision_micro']:.3f}  "
             f"recall {scores['recall_micro']:.3f}  ({scores['cases']} cases)",
             "confusion matrix (rows true class, columns predicted class)",
             f"  {'':<10}" + "".join(f"{name:>10}" for name in SEVERITY_NAMES)]
    for name, row in zip(SEVERITY_NAMES, scores["confusion_matrix"]):
        lines.append(f"  {name:<10}" + "".join(f"{count:>10}" for count in row))
    lines.append(f"  {'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for name, values in scores["per_class"].items():
        lines.append(f"  {name:<10}{values['precision']:>10.3f}{values['recall']:>10.3f}"
                     f"{values['f1']:>10.3f}{values['support']:>10}")
    return "\n".join(lines)


def _cases(args):
    return args.cases[0] if len(args.cases) == 1 and args.cases[0] in (
        "train", "val", "test", "all") else args.cases


def _batch_size(args) -> int:
    from tfcovid.errors import ConfigError

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size {args.batch_size}: needs 1 or more")
    return args.batch_size


def _describe(cases, case_ids: list, store: str, lung_sources: dict) -> str:
    part = "the chosen cases" if not isinstance(cases, str) or cases == "ids" else (
        "every case with a severity label" if cases == "all" else f"the {cases} part")
    counts = ", ".join(f"{lung_sources[source]} {text}" for source, text in (
        ("learned", "by the lung model"), ("store", "from the store"),
        ("classical", "by the classical segmenter")) if lung_sources[source])
    return f"{part}, {len(case_ids)} cases of {store} (lungs: {counts})"


def _print_skipped(skipped: list[dict]) -> None:
    import sys

    for entry in skipped:
        print(f"tfcovid: warning: case {entry['case_id']} skipped: {entry['reason']}",
              file=sys.stderr)
