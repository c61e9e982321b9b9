"""MedSeg COVID-19 CT segmentation data (medicalsegmentation.com/covid19), in Hounsfield units.

Files looked for in ``src`` (``.nii`` or ``.nii.gz``; each part is optional, one must exist):

- ``tr_im`` / ``tr_mask``: 100 labelled axial slices of 512 x 512, stacked along the third
  NIfTI axis. They come from about 40 patients whose slice-to-patient mapping is not
  published, so each slice becomes its own case ``tr_000`` ... ``tr_099`` (numbered by NIfTI
  slice index, which COVID-SemiSeg's file names ``0.jpg`` ... ``99.jpg`` follow) with an empty
  ``patient_id`` (unknown). A single case "tr" would pin all 100 slices to one side of any
  split; one case per slice at least lets case-level splits spread them, at the price of
  possibly placing two slices of one patient on both sides.
- ``val_im``: 10 unlabelled slices, cases ``val_000`` ... ``val_009``.
- ``rp_im/<n>``, ``rp_msk/<n>`` (required for each image), ``rp_lung_msk/<n>`` (optional):
  9 Radiopaedia volumes, one case ``rp_<n>`` each, patient ``rp_<n>``, with ``lung`` = lung
  mask nonzero.

Labels: 1 ground-glass opacity and 2 consolidation are kept; 3 pleural effusion goes to
``effusion_label`` (default 0, background: effusion is not lung infection). Arrays are turned
into radiological views by the affine (``tfcovid.data.readers.orientation``: rows anterior ->
posterior, columns patient right -> left); volumes run inferior -> superior, while the ``tr``
and ``val`` stacks keep their stored slice order (their slices are unrelated). Spacing comes
from the header zooms. ``extra`` holds ``split`` (tr, val, rp), ``file`` and, for stacked
slices, ``nifti_slice``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tfcovid.data.readers import checks
from tfcovid.data.readers.nifti import nifti_stem, read_nifti, read_nifti_hu, read_nifti_labels
from tfcovid.data.store import Case
from tfcovid.errors import DataError

DESCRIPTION = "MedSeg COVID-19 CT segmentation: tr_im/tr_mask.nii.gz, val_im, rp_im/rp_msk/"
EFFUSION = 3


def _nifti(folder: Path, stem: str) -> Path | None:
    for suffix in (".nii.gz", ".nii"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def _stacked_slices(image_path: Path, mask_path: Path | None, split: str,
                    mapping: dict[int, int]) -> Iterator[tuple[Case, str]]:
    image, spacing = read_nifti_hu(image_path, keep_slice_order=True)
    label = None
    if mask_path is not None:
        label, _ = read_nifti_labels(mask_path, mapping, keep_slice_order=True)
        checks.require_same_shape(label, mask_path, image, image_path)
    for index in range(image.shape[0]):
        case = Case(f"{split}_{index:03d}", image=image[index:index + 1],
                    label=None if label is None else label[index:index + 1], spacing_mm=spacing,
                    source=f"MedSeg {image_path.name}",
                    extra={"split": split, "file": image_path.name, "nifti_slice": str(index)})
        yield case, str(image_path)


def _radiopaedia_volumes(src: Path, mapping: dict[int, int]) -> Iterator[tuple[Case, str]]:
    for image_path in sorted((src / "rp_im").glob("*.nii*")):
        stem = nifti_stem(image_path)
        mask_path = _nifti(src / "rp_msk", stem)
        if mask_path is None:
            raise DataError(f"{image_path}: no infection mask rp_msk/{stem}.nii.gz")
        image, spacing = read_nifti_hu(image_path)
        label, _ = read_nifti_labels(mask_path, mapping)
        checks.require_same_shape(label, mask_path, image, image_path)
        lung_path = _nifti(src / "rp_lung_msk", stem)
        lung = None
        if lung_path is not None:
            lung_values, _ = read_nifti(lung_path)
            checks.require_same_shape(lung_values, lung_path, image, image_path)
            lung = (lung_values != 0).astype(np.uint8)
        case = Case(f"rp_{stem}", image=image, label=label, lung=lung, spacing_mm=spacing,
                    source=f"MedSeg rp_im/{image_path.name}", patient_id=f"rp_{stem}",
                    extra={"split": "rp", "file": f"rp_im/{image_path.name}"})
        yield case, str(image_path)


def read(src: Path, *, effusion_label: int = 0) -> Iterator[tuple[Case, str]]:
    """Yields MedSeg cases (module docstring) with the file each came from.

    Args:
        src: folder holding ``tr_im.nii.gz`` etc. and/or ``rp_im/``.
        effusion_label: int. Store label for pleural effusion (MedSeg label 3): 0 background,
            1 GGO or 2 consolidation. Defaults to 0.

    Raises:
        DataError: no MedSeg files in ``src``, or a bad file.
        ValueError: ``effusion_label`` not 0, 1 or 2.
    """
    if effusion_label not in checks.CLASS_LABELS:
        raise ValueError(f"effusion_label must be 0, 1 or 2. Received: "
                         f"effusion_label={effusion_label!r}")
    src = Path(src)
    mapping = {EFFUSION: effusion_label}
    train_image = _nifti(src, "tr_im")
    validation_image = _nifti(src, "val_im")
    if train_image is None and validation_image is None and not (src / "rp_im").is_dir():
        raise DataError(f"{src}: no MedSeg files (tr_im.nii.gz, val_im.nii.gz or rp_im/)")
    if train_image is not None:
        train_mask = _nifti(src, "tr_mask")
        if train_mask is None:
            raise DataError(f"{train_image}: no mask tr_mask.nii.gz beside it")
        yield from _stacked_slices(train_image, train_mask, "tr", mapping)
    if validation_image is not None:
        yield from _stacked_slices(validation_image, None, "val", mapping)
    if (src / "rp_im").is_dir():
        yield from _radiopaedia_volumes(src, mapping)
