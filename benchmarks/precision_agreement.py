"""How far ``tfcovid predict --precision mixed_bfloat16`` departs from the float32 prediction.

Runs `tfcovid.predict.predict_scan` twice per scan, in float32 and in the other precision, and
prints per scan: the share of voxels with the same label, the Dice of the two infection masks
(labels > 0), the largest difference of the per-slice infected fraction of lung, and both
case-level infected fractions and severity classes. Without scans, phantom chest CTs
(`tfcovid.bench.write_phantom_nifti`, one per seed) are written to a temporary folder.

Usage (after ``tfcovid demo --out demo_out``)::

    python benchmarks/precision_agreement.py demo_out/run --seeds 0 1 2 --slices 40 --size 256
    python benchmarks/precision_agreement.py runs/my_run scans/patient_7.nii.gz
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import nibabel
import numpy as np

from tfcovid import bench, predict


def compare(scan: Path, predictors: dict, folder: Path) -> dict:
    """Figures of one scan (module docstring)."""
    outputs = {}
    for precision, predictor in predictors.items():
        out = folder / f"{predict.scan_name(scan)}_{precision}"
        summary = predict.predict_scan(scan, predictor, out, weights="final", progress=False,
                                       overwrite=True)
        labels = np.asarray(nibabel.load(out / predict.LABELS_FILE).dataobj)
        slices = np.array([entry["ratios"]["infection"] for entry in summary["slices"]],
                          dtype=float)
        outputs[precision] = (labels, slices, summary["case"])
    (full, full_slices, full_case), (half, half_slices, half_case) = outputs.values()
    infected = np.count_nonzero(full > 0) + np.count_nonzero(half > 0)
    return {"scan": predict.scan_name(scan),
            "label_agreement": float(np.mean(full == half)),
            "infection_dice": (2 * np.count_nonzero((full > 0) & (half > 0)) / infected
                               if infected else 1.0),
            "max_slice_fraction_difference": float(np.nanmax(np.abs(full_slices - half_slices))),
            "infected_fraction": [full_case["ratios"]["infection"],
                                  half_case["ratios"]["infection"]],
            "severity_class": [full_case["severity_class"], half_case["severity_class"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="trained run folder")
    parser.add_argument("scans", nargs="*", type=Path, help="scans (default: phantoms)")
    parser.add_argument("--precision", default="mixed_bfloat16",
                        help="precision compared with float32 (default: mixed_bfloat16)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="phantom seeds when no scan is given (default: 0 1 2)")
    parser.add_argument("--slices", type=int, default=40, help="phantom slices (default: 40)")
    parser.add_argument("--size", type=int, default=256, help="phantom side in px "
                        "(default: 256)")
    args = parser.parse_args()
    predictors = {precision: predict.load_predictor(args.run, "final", precision=precision)
                  for precision in ("float32", args.precision)}
    with tempfile.TemporaryDirectory(prefix="tfcovid-precision-") as folder:
        folder = Path(folder)
        scans = args.scans or [bench.write_phantom_nifti(folder / f"phantom_{seed}.nii.gz",
                                                         args.slices, args.size, seed)
                               for seed in args.seeds]
        for scan in scans:
            print(json.dumps(compare(scan, predictors, folder)))


if __name__ == "__main__":
    main()
