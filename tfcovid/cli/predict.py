"""``tfcovid predict SCAN [SCAN ...] --model RUN_DIR --out OUTDIR [--weights ...] [--precision ...]
[--batches-at-once N] [--overwrite]``.

Segments CT scans with a trained run and writes, per scan, ``labels.nii.gz``, ``lung.nii.gz``,
``severity.json``, ``phenotypes.csv`` and ``report.html`` (`tfcovid.predict.predict_scan`). A
SCAN is a NIfTI file, a DICOM series folder, a folder of PNG/JPG slices, or a folder holding
several scans (NIfTI files and series subfolders). One scan is written into OUTDIR itself;
several go to ``OUTDIR/<scan name>/``, and ``OUTDIR/phenotypes.csv`` then holds the phenotype
rows of every scan written, in order. A scan that fails is reported on stderr in one line and
skipped; the exit status is then 2 once the others are done. Example::

    tfcovid predict scans/ --model runs/phantom_tiny --out reports/
"""

from __future__ import annotations

# tfcovid.inference.WEIGHTS, tfcovid.precision.PRECISIONS and tfcovid.predict.BATCHES_AT_ONCE,
# spelled out: importing them loads TensorFlow.
WEIGHTS = ("best", "final")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
BATCHES_AT_ONCE = 2


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="segment CT scans and report infection and severity",
        description="Segment CT scans (NIfTI files, DICOM series folders, folders of PNG/JPG "
                    "slices, or folders of such scans) with a trained run; write the label "
                    "volume, the lung mask, the infected fraction of lung per slice, lung and "
                    "class, the severity class, the CT severity score and an HTML report.")
    parser.add_argument("scans", nargs="+", metavar="SCAN", help="scan file or folder")
    parser.add_argument("--model", required=True, metavar="RUN_DIR",
                        help="workdir of a finished training run")
    parser.add_argument("--out", required=True, metavar="OUTDIR",
                        help="output folder (one subfolder per scan when there are several)")
    parser.add_argument("--weights", choices=WEIGHTS, default="best",
                        help="best validation epoch or final network (default: best)")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="slices per forward pass (default: 8)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="rebuild the network in this precision: mixed_bfloat16 is faster "
                             "on CPUs with AVX-512 BF16 and on GPUs, with labels that can "
                             "differ near the boundary (default: as saved, float32 unless "
                             "trained with mixed precision)")
    parser.add_argument("--batches-at-once", type=int, default=BATCHES_AT_ONCE,
                        help="slice batches in the network at once, on threads, for the run and "
                             "the lung model: 2 was faster on a 2-core CPU, 1 holds less "
                             f"memory; the outputs are the same (default: {BATCHES_AT_ONCE})")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--lung-model", metavar="LUNG_RUN_DIR",
                        help="run trained on lung masks (tfcovid severity lung-store) to find "
                             "the lungs instead of the classical segmenter")
    parser.set_defaults(run=run)


def run(args) -> None:
    # Imported here so that `tfcovid --help` does not load TensorFlow.
    import sys
    from pathlib import Path

    from tfcovid import lung_model, predict
    from tfcovid.errors import ConfigError, DataError, TfcovidError
    from tfcovid.severity import phenotypes

    for option, value in (("--batch-size", args.batch_size),
                          ("--batches-at-once", args.batches_at_once)):
        if value < 1:
            raise ConfigError(f"{option} {value}: needs 1 or more")
    scans, failed = [], []
    for path in args.scans:
        try:
            scans.extend(predict.find_scans(path))
        except DataError as error:
            print(f"tfcovid: error: {error}", file=sys.stderr)
            failed.append(path)
    total = len(scans) + len(failed)
    predictor = (predict.load_predictor(args.model, args.weights, precision=args.precision,
                                        batches_at_once=args.batches_at_once)
                 if scans else None)
    lung_run = (lung_model.load_lung_predictor(args.lung_model, args.batches_at_once)
                if scans and args.lung_model is not None else None)
    out = Path(args.out)
    several = total > 1
    used, written = set(), []
    for scan in scans:
        name, copy = predict.scan_name(scan), 1
        while name in used:  # two scans of one name from different folders
            copy += 1
            name = f"{predict.scan_name(scan)}_{copy}"
        used.add(name)
        out_dir = out / name if several else out
        try:
            summary = predict.predict_scan(scan, predictor, out_dir, weights=args.weights,
                                           batch_size=args.batch_size,
                                           overwrite=args.overwrite, progress=not args.quiet,
                                           lung_run=lung_run)
        except TfcovidError as error:
            print(f"tfcovid: error: {error}", file=sys.stderr)
            failed.append(scan)
            continue
        written.append(out_dir)
        case = summary["case"]
        print(f"{out_dir}: severity {case['severity_class']} ({case['severity_name']}), "
              f"infection {100 * case['ratios']['infection']:.1f}% of lung, CT-SS "
              f"{summary['ct_severity_score']['total']}/{summary['ct_severity_score']['max']}")
    if several and written:
        phenotypes.write_csv(out / predict.PHENOTYPES_FILE,
                             [row for out_dir in written
                              for row in phenotypes.read_csv(out_dir / predict.PHENOTYPES_FILE)])
    if failed:
        raise DataError(f"{len(failed)} of {total} scans failed: "
                        f"{', '.join(str(path) for path in failed)}")
