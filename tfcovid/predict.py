"""From one CT scan to a severity report: labels, lungs, ratios, severity class, CT-SS (issue 6).

`predict_scan` reads a scan (`read_scan`), runs a trained run's network over its slices in
batches (`tfcovid.export.predict_hu`: the run's HU window, resizing to the network's input size
and back), finds the lungs with the classical segmenter (`tfcovid.severity.lung`) or, given a
lung run, the learned one (`tfcovid.lung_model`), and writes into one output folder:

- ``labels.nii.gz``: uint8 labels, 0 background, 1 ground-glass opacity (infection for a
  single-class run), 2 consolidation, the argmax of the class probabilities;
- ``lung.nii.gz``: uint8, 0 outside, 1 right lung, 2 left lung;
- ``severity.json``: scan and model, infected fractions of lung per case, lung and slice for
  each class (soft ratios from the class probabilities: "infection" for single-class runs,
  "infection", "ggo" and "consolidation" for multi-class ones; `tfcovid.severity.ratio`), the
  severity class of the case (and of each slice) by the run's thresholds, and the 12-region
  CT severity score (`tfcovid.severity.ctss`); the thresholds are those stored with the run by
  ``tfcovid severity fit`` (`tfcovid.severity.thresholds`), else the reference ones, and
  ``settings`` records which (``thresholds_source``, ``thresholds_file``);
- ``phenotypes.csv``: one row of image phenotypes (`tfcovid.severity.phenotypes`): scan name,
  severity class and name, infected fraction of lung, then the first-order, GLCM, GLDM and
  NGTDM radiomic features of the infected lung (predicted labels inside the lung mask, HU);
- ``report.html``: one self-contained page (`tfcovid.report`).

Scans, told apart by what the path is (`read_scan`):

- a NIfTI file (``.nii``, ``.nii.gz``) in HU; both NIfTI outputs keep its affine and header
  geometry, voxel for voxel in its stored axis order;
- a DICOM CT series folder; the outputs get a diagonal affine from the spacing, axes pointing
  to the patient's left, posterior and superior (the series' world position is not kept);
- a folder of PNG/JPG slices: 8-bit grey levels already windowed, read in file-name order as
  slices inferior to superior. Grey g becomes ``low + g / 255 * width`` HU, with
  ``low = level - width / 2`` from the run's HU window, so the network sees the grey levels
  again (exactly for a run whose window spans the picture's window); lung finding then
  assumes that window shows air below -320 HU. A picture has no spacing: the in-plane spacing
  is guessed from a typical chest field of view, ``IMAGE_FIELD_OF_VIEW_MM`` over the larger
  side in px, slices ``IMAGE_SLICE_MM`` apart (the lung finder measures its discs in mm).

Everything is written into a temporary folder beside ``out_dir`` and renamed at the end, so
``out_dir`` is either complete or absent.

Example::

    summary = predict_scan("scans/patient_7.nii.gz", "runs/phantom_tiny", "reports/patient_7")
    summary["case"]["severity_name"], summary["ct_severity_score"]["total"]
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import nibabel
import numpy as np
import tensorflow as tf
from nibabel import orientations

from tfcovid import atomic, export, inference, lung_model, parallel, report
from tfcovid.data.readers import checks, dicom, nifti, png
from tfcovid.data.store import SEVERITY_NAMES
from tfcovid.errors import DataError
from tfcovid.progress import progress_bar
from tfcovid.severity import classes, ctss, lung, phenotypes, ratio, thresholds

logger = logging.getLogger(__name__)

LABELS_FILE = "labels.nii.gz"
LUNG_FILE = "lung.nii.gz"
SEVERITY_FILE = "severity.json"
PHENOTYPES_FILE = "phenotypes.csv"
REPORT_FILE = "report.html"
NIFTI_SUFFIXES = (".nii.gz", ".nii")
IMAGE_FIELD_OF_VIEW_MM = 360.0
IMAGE_SLICE_MM = 5.0
BATCHES_AT_ONCE = 2
"""Slice batches a `Predictor` runs at once by default: on 2 CPU cores, 2 batches of 8 took
0.16-0.17 s per 512 x 512 slice against 0.18-0.20 one at a time (``benchmarks/RESULTS.md``)."""
_RADIOLOGICAL = orientations.axcodes2ornt(("L", "P", "S"))


@dataclasses.dataclass(frozen=True)
class Scan:
    """A CT scan read for prediction.

    Attributes:
        path: the file or folder it was read from.
        name: file name without ``.nii``/``.nii.gz``, or the folder name.
        kind: "nifti", "dicom" or "images".
        volume_hu: int16 array (slices, rows, columns) in HU, the readers' orientation (rows
            anterior -> posterior, columns patient right -> left, slices inferior -> superior).
        spacing_mm: (slice, row, column) voxel size in mm.
        affine: (4, 4) RAS+ affine of the stored voxel order of the outputs.
        header: the NIfTI header of a NIfTI scan, else None.
    """

    path: Path
    name: str
    kind: str
    volume_hu: np.ndarray
    spacing_mm: tuple[float, float, float]
    affine: np.ndarray
    header: nibabel.Nifti1Header | None


@dataclasses.dataclass(frozen=True)
class Predictor:
    """A run loaded once for many scans: the run, which weights it holds, and its prediction
    traced once for any batch and slice size (`predict_hu`); ``jit_compile`` XLA-compiles it
    (once per batch shape; equal to the plain graph up to float rounding, and no faster on an
    idle 2-core CPU, ``benchmarks/RESULTS.md``);
    ``batches_at_once`` (int >= 1) is how many slice batches `predict_batches` runs at once
    on threads, with the same outputs for any value (`BATCHES_AT_ONCE`)."""

    run: inference.LoadedRun
    weights: str
    jit_compile: bool = False
    batches_at_once: int = BATCHES_AT_ONCE

    @property
    def precision(self) -> str:
        """The network's dtype policy: "float32", "mixed_float16" or "mixed_bfloat16"."""
        return self.run.network.dtype_policy.name

    def __post_init__(self):
        if self.batches_at_once < 1:
            raise ValueError(f"batches_at_once must be 1 or more. Received: "
                             f"batches_at_once={self.batches_at_once}")
        # Graph mode: 1.4x faster than eager for Inf-Net on 512 x 512 slices (benchmarks/).
        # Without AutoGraph (the prediction has no Python control flow on tensors) tracing
        # Inf-Net takes 1.0-1.1 s instead of 1.5-1.9, for the same graph.
        traced = tf.function(lambda slices_hu: export.predict_tensors(self.run, slices_hu),
                             input_signature=[tf.TensorSpec([None, None, None], tf.float32)],
                             jit_compile=self.jit_compile, autograph=False)
        object.__setattr__(self, "traced_predict", traced)

    def predict_hu(self, slices_hu: np.ndarray) -> dict:
        """`tfcovid.export.predict_hu` run as one traced graph: the same outputs, as NumPy."""
        outputs = self.traced_predict(np.asarray(slices_hu, np.float32))
        return {key: value.numpy() for key, value in outputs.items()}

    def predict_batches(self, volume_hu: np.ndarray,
                        batch_size: int) -> Iterator[tuple[int, dict]]:
        """`predict_hu` over a volume's slices, ``batch_size`` (int >= 1) at a time, in slice
        order, ``batches_at_once`` batches running at once (`tfcovid.parallel.ordered_map`).

        Args:
            volume_hu: array (slices, rows, columns), HU.
            batch_size: int >= 1. Slices per forward pass.

        Returns:
            an iterator of (index of the batch's first slice, `predict_hu` outputs).
        """
        starts = range(0, volume_hu.shape[0], batch_size)
        batches = (volume_hu[start:start + batch_size] for start in starts)
        return zip(starts, parallel.ordered_map(self.predict_hu, batches, self.batches_at_once))


def load_predictor(run_dir: str | os.PathLike, weights: str = "best",
                   jit_compile: bool = False, precision: str | None = None,
                   batches_at_once: int = BATCHES_AT_ONCE) -> Predictor:
    """Loads a run folder for `predict_scan` (`tfcovid.export.load_export_run`); see
    `Predictor` for ``jit_compile`` and ``batches_at_once``.

    ``precision`` None keeps the network as saved (float32 unless trained with mixed
    precision); "mixed_bfloat16" (or "mixed_float16", "float32") rebuilds it in that dtype
    policy with the saved weights: on a CPU with AVX-512 BF16, Inf-Net inference in bfloat16
    is 1.6-1.7x faster, and labels can differ from the float32 ones near the decision
    boundary (agreement in ``benchmarks/RESULTS.md``). The prior network of a multi-class run
    stays as saved.

    Raises:
        ValueError: unknown ``weights`` or ``precision``; ``batches_at_once`` < 1.
        DataError: a missing or unfinished run, or one that cannot predict whole slices.
    """
    run = export.load_export_run(run_dir, weights, precision=precision)
    return Predictor(run, weights, jit_compile, batches_at_once)


def scan_name(path: str | os.PathLike) -> str:
    """``"a/patient_7.nii.gz"`` gives ``"patient_7"``; a folder gives its own name."""
    return nifti.nifti_stem(path) if _is_nifti(Path(path)) else Path(path).name


def find_scans(path: str | os.PathLike) -> list[Path]:
    """The scans a command-line path names.

    A NIfTI file, a DICOM series folder or a folder of slice images is one scan; any other
    folder holds several: each NIfTI file and each non-hidden subfolder in it, by name.

    Raises:
        DataError: ``path`` does not exist, or is a folder with no scan in it.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file() or _folder_kind(path) is not None:
        return [path]
    scans = sorted(item for item in path.iterdir() if not item.name.startswith(".")
                   and ((item.is_file() and _is_nifti(item)) or item.is_dir()))
    if not scans:
        raise DataError(f"{path}: no scan in this folder; expected NIfTI files, DICOM files or "
                        f"PNG/JPG slices")
    return scans


def read_scan(path: str | os.PathLike, window_hu: tuple[float, float]) -> Scan:
    """Reads a NIfTI file, a DICOM series folder or a folder of slice images (module docstring).

    Args:
        path: the scan.
        window_hu: (level, width) in HU that maps the grey levels of slice images back to HU.

    Returns:
        ``Scan``.

    Raises:
        DataError: a missing, unreadable or corrupt scan, or one that is not a CT in HU (a
            colour picture, a 4-D volume, values impossible for CT).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        if not _is_nifti(path):
            raise DataError(f"{path}: not a NIfTI file (.nii, .nii.gz); pass a NIfTI file, a "
                            f"DICOM series folder or a folder of PNG/JPG slices")
        volume, spacing = nifti.read_nifti_hu(path)
        header = nibabel.load(path).header
        return Scan(path, scan_name(path), "nifti", volume, spacing,
                    header.get_best_affine(), header)
    kind = _folder_kind(path)
    if kind == "dicom":
        volume, spacing, _ = dicom.read_dicom_series(path)
    elif kind == "images":
        volume = _read_images(path, window_hu)
        pixel_mm = IMAGE_FIELD_OF_VIEW_MM / max(volume.shape[1:])
        spacing = (IMAGE_SLICE_MM, pixel_mm, pixel_mm)
    else:
        raise DataError(f"{path}: neither a DICOM series nor a folder of PNG/JPG slices")
    affine = np.diag([-spacing[2], -spacing[1], spacing[0], 1.0])  # axes to L, P, S in RAS+
    return Scan(path, path.name, kind, volume, spacing, affine, None)


def predict_scan(scan_path: str | os.PathLike, run_dir: str | os.PathLike | Predictor,
                 out_dir: str | os.PathLike, weights: str = "best", batch_size: int = 8,
                 overwrite: bool = False, progress: bool = True,
                 timings: dict | None = None,
                 lung_run: str | os.PathLike | Predictor | None = None,
                 precision: str | None = None) -> dict:
    """Segments a scan and writes its labels, lungs, severity and report (module docstring).

    Args:
        scan_path: a NIfTI file, a DICOM series folder or a folder of PNG/JPG slices.
        run_dir: a run folder written by ``tfcovid train``, or a `Predictor` loaded once for
            many scans (then ``weights`` must be its own).
        out_dir: output folder; its parent is created.
        weights: "best" or "final", as `tfcovid.inference.load_run`. Defaults to "best".
        batch_size: int >= 1. Slices per forward pass. Defaults to 8.
        overwrite: bool. Replace an existing ``out_dir``. Defaults to False.
        progress: bool. Show a progress bar over slice batches on a terminal. Defaults to True.
        timings: dict or None. Filled with the seconds spent per stage: "load" (only when
            ``run_dir`` is a folder), "read", "inference" (waiting for the network: HU window,
            resizing to the network and back, forward passes), "stitching" (slice batches into
            the volume, beside the next batches' inference), "lung_mask", "severity" (ratios,
            classes, CT-SS), "phenotypes" (radiomic features), "writing" (NIfTI, JSON, CSV,
            HTML report). Defaults to None.
        lung_run: a run trained on lung masks (`tfcovid.lung_model`), as a folder (loaded
            with the run's ``batches_at_once``) or a loaded `Predictor`, or None for the
            classical segmenter. Defaults to None.
        precision: None or "float32", "mixed_float16", "mixed_bfloat16", as
            `load_predictor`; with a `Predictor`, None or its own. Defaults to None.

    Returns:
        the content of ``severity.json``, a dict: "scan" (path, name, kind, shape, spacing_mm),
        "model" (run, name, family, weights, class_names, image_size, window_hu), "settings"
        (ratio mode, severity thresholds and their source, lung model), "case" (ratios, lungs,
        lung_voxels, severity_class, severity_name), "ct_severity_score" (total, max,
        regions), "slices" (per slice: index, lung_voxels, ratios, right, left,
        severity_class), "files".

    Raises:
        ValueError: ``batch_size`` < 1, or ``weights`` or ``precision`` other than a given
            `Predictor`'s.
        DataError: ``out_dir`` exists and ``overwrite`` is False; a bad scan (`read_scan`);
            no lung found in the scan; a run that cannot predict.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be 1 or more. Received: batch_size={batch_size}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not (overwrite and out_dir.is_dir()):
        problem = "already exists; pass --overwrite to replace it" if out_dir.is_dir() else \
            "exists and is not a folder; choose another --out"
        raise DataError(f"{out_dir}: {problem}")
    if isinstance(run_dir, Predictor):
        precision = precision or run_dir.precision
        for name, value in (("weights", weights), ("precision", precision)):
            if value != getattr(run_dir, name):
                raise ValueError(f"{name} must be the predictor's ({getattr(run_dir, name)!r}). "
                                 f"Received: {name}={value!r}")
        predictor = run_dir
    else:
        with _timed(timings, "load"):
            predictor = load_predictor(run_dir, weights, precision=precision)
    if isinstance(lung_run, (str, os.PathLike)):
        with _timed(timings, "load"):
            lung_run = lung_model.load_lung_predictor(lung_run, predictor.batches_at_once)
    data = predictor.run.experiment.data
    with _timed(timings, "read"):
        scan = read_scan(scan_path, (data.window_level_hu, data.window_width_hu))
    probabilities, labels = _segment(predictor, scan, batch_size, progress, timings)
    with _timed(timings, "lung_mask"):
        lungs = (lung.segment_lungs(scan.volume_hu, scan.spacing_mm) if lung_run is None
                 else lung_model.segment_lungs_learned(lung_run, scan.volume_hu,
                                                       scan.spacing_mm, batch_size))
    if not lungs.any():
        reason = ("no air-like region below -320 HU inside the body" if lung_run is None
                  else f"the lung model {lung_run.run.workdir} finds none")
        raise DataError(f"{scan.path}: no lung found ({reason}); is this a chest CT?")
    with _timed(timings, "severity"):
        summary = _summary(scan, predictor, probabilities, labels, lungs, lung_run)
    with _timed(timings, "phenotypes"):
        phenotype_row = _phenotype_row(scan, labels, lungs, summary)
    with _timed(timings, "writing"):
        _write_outputs(out_dir, scan, labels, lungs, summary, phenotype_row)
    logger.info("%s: %s severity, CT-SS %d; written to %s", scan.path,
                summary["case"]["severity_name"], summary["ct_severity_score"]["total"], out_dir)
    return summary


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _image_files(folder: Path) -> list[Path]:
    return sorted(item for item in folder.iterdir() if item.is_file()
                  and not item.name.startswith(".") and item.suffix.lower()
                  in png.IMAGE_SUFFIXES)


def _folder_kind(folder: Path) -> str | None:
    """"dicom" or "images" for a folder that is one scan, else None."""
    if not folder.is_dir():
        return None
    try:
        dicom.series_files(folder)
        return "dicom"
    except DataError:
        return "images" if _image_files(folder) else None


def _read_images(folder: Path, window_hu: tuple[float, float]) -> np.ndarray:
    files = _image_files(folder)
    slices = [png.read_grey_image(path) for path in files]
    shapes = {grey.shape for grey in slices}
    if len(shapes) > 1:
        raise DataError(f"{folder}: slices of different sizes {sorted(shapes)}; a scan's "
                        f"slices share one size")
    level, width = window_hu
    hounsfield = level - width / 2 + np.stack(slices).astype(np.float64) / 255.0 * width
    return checks.to_hu_int16(hounsfield, folder)


@contextlib.contextmanager
def _timed(timings: dict | None, stage: str):
    """Adds the seconds the block takes to ``timings[stage]``; nothing when ``timings`` is
    None."""
    start = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def _segment(predictor: Predictor, scan: Scan, batch_size: int, progress: bool,
             timings: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities for `infection_ratios` (infection probability (slices, rows,
    columns) for single-class runs, all 3 classes for multi-class ones) and uint8 labels."""
    volume = scan.volume_hu
    multiclass = predictor.run.family == "multiclass"
    probabilities = np.empty(volume.shape + ((3,) if multiclass else ()), np.float32)
    labels = np.empty(volume.shape, np.uint8)
    batches = predictor.predict_batches(volume, batch_size)
    count = math.ceil(volume.shape[0] / batch_size)
    for _ in progress_bar(range(count), total=count, description=scan.name, enabled=progress,
                          unit="batch"):
        with _timed(timings, "inference"):  # waiting for the next batch's outputs
            start, outputs = next(batches)
        with _timed(timings, "stitching"):
            stop = start + len(outputs["label"])
            probabilities[start:stop] = (outputs["probabilities"] if multiclass
                                         else outputs["probabilities"][..., 1])
            labels[start:stop] = outputs["label"]
    with _timed(timings, "stitching"):
        # bilinear resizing keeps probabilities in [0, 1] up to float rounding
        np.clip(probabilities, 0.0, 1.0, out=probabilities)
    return probabilities, labels


def _summary(scan: Scan, predictor: Predictor, probabilities: np.ndarray, labels: np.ndarray,
             lungs: np.ndarray, lung_run: Predictor | None) -> dict:
    run, data = predictor.run, predictor.run.experiment.data
    ratios = ratio.infection_ratios(probabilities, lungs)
    named = ratios.to_dict()
    case_ratio = float(ratios.per_case[0])
    stored = thresholds.load_thresholds(run.workdir)
    severity = classes.severity_class(case_ratio, stored.values)
    score = ctss.ct_severity_score(labels, lungs, slice_order="inferior_to_superior")
    for entry, slice_ratio in zip(named["slices"], ratios.per_slice[:, 0]):
        entry["severity_class"] = (None if np.isnan(slice_ratio)
                                   else classes.severity_class(float(slice_ratio), stored.values))
    return {
        "scan": {"path": os.fspath(scan.path), "name": scan.name, "kind": scan.kind,
                 "shape": list(scan.volume_hu.shape), "spacing_mm": list(scan.spacing_mm)},
        "model": {"run": os.fspath(run.workdir), "name": run.experiment.model.name,
                  "family": run.family, "weights": predictor.weights,
                  "class_names": list(inference.CLASS_NAMES[run.family]),
                  "image_size": list(data.image_size),
                  "window_hu": [data.window_level_hu, data.window_width_hu]},
        "settings": {"ratio_mode": "soft", "precision": predictor.precision,
                     "thresholds": list(stored.values),
                     "thresholds_source": stored.source, "thresholds_file": stored.path,
                     "lung_model": None if lung_run is None else os.fspath(lung_run.run.workdir),
                     "slice_order": "inferior_to_superior"},
        "case": {"ratios": named["case"], "lungs": named["lungs"],
                 "lung_voxels": {"right": int(ratios.lung_voxels[:, 0].sum()),
                                 "left": int(ratios.lung_voxels[:, 1].sum())},
                 "severity_class": severity, "severity_name": SEVERITY_NAMES[severity]},
        "ct_severity_score": {"total": score.total, "max": 2 * len(score.regions),
                              "regions": score.regions},
        "slices": named["slices"],
        "files": [LABELS_FILE, LUNG_FILE, SEVERITY_FILE, PHENOTYPES_FILE, REPORT_FILE],
    }


def to_stored_order(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Inverse of `tfcovid.data.readers.orientation.to_radiological`: a (slices, rows,
    columns) array back in the voxel order of a file with ``affine`` (RAS+, (4, 4))."""
    transform = orientations.ornt_transform(_RADIOLOGICAL, orientations.io_orientation(affine))
    return orientations.apply_orientation(np.asarray(array).transpose(2, 1, 0), transform)


def _nifti(array: np.ndarray, scan: Scan) -> nibabel.Nifti1Image:
    image = nibabel.Nifti1Image(to_stored_order(array, scan.affine).astype(np.uint8),
                                scan.affine)
    if scan.header is not None:
        image.set_qform(scan.header.get_qform(), int(scan.header["qform_code"]))
        image.set_sform(scan.header.get_sform(), int(scan.header["sform_code"]))
        image.header.set_xyzt_units(*scan.header.get_xyzt_units())
    return image


def _phenotype_row(scan: Scan, labels: np.ndarray, lungs: np.ndarray, summary: dict) -> dict:
    """The scan's row of ``phenotypes.csv`` (`tfcovid.severity.phenotypes.CSV_COLUMNS`)."""
    case = summary["case"]
    return {"scan": scan.name, "severity_class": case["severity_class"],
            "severity_name": case["severity_name"],
            "infected_fraction": case["ratios"]["infection"],
            **phenotypes.infection_phenotypes(scan.volume_hu, labels, lungs, scan.spacing_mm)}


def _write_outputs(out_dir: Path, scan: Scan, labels: np.ndarray, lungs: np.ndarray,
                   summary: dict, phenotype_row: dict) -> None:
    with atomic.folder_replaced(out_dir) as temporary:
        temporary.mkdir()
        nibabel.save(_nifti(labels, scan), temporary / LABELS_FILE)
        nibabel.save(_nifti(lungs, scan), temporary / LUNG_FILE)
        (temporary / SEVERITY_FILE).write_text(json.dumps(summary, indent=1, allow_nan=False))
        phenotypes.write_csv(temporary / PHENOTYPES_FILE, [phenotype_row])
        level, width = summary["model"]["window_hu"]
        indices = report.montage_slices(labels, lungs)
        montage = report.slice_montage(scan.volume_hu, labels, indices,
                                       (level - width / 2, level + width / 2))
        (temporary / REPORT_FILE).write_text(report.render_report(summary, montage, indices),
                                             encoding="utf-8")
