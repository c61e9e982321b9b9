"""Any CT volume in NIfTI, in Hounsfield units, with an optional infection mask.

``src`` is one ``.nii``/``.nii.gz`` file (one case, named by the file) with ``mask`` a mask file,
or a folder of them with ``mask`` a folder holding a mask of the same file name for each.
Volumes and masks are turned into radiological views by their affines, as in the ``medseg``
importer (``tfcovid.data.readers.orientation``), and must then have equal shapes. Mask values
must be 0 background, 1 ground-glass opacity, 2 consolidation after ``label_map`` (for example
``{3: 0}`` sends a pleural-effusion label to background). ``patient_id`` is left empty (unknown).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from tfcovid.data.readers import checks
from tfcovid.data.readers.nifti import nifti_stem, read_nifti_hu, read_nifti_labels
from tfcovid.data.store import Case
from tfcovid.errors import DataError

DESCRIPTION = "any NIfTI CT in HU (a file or a folder), with optional --mask"


def _pairs(src: Path, mask: Path | None) -> list[tuple[Path, Path | None]]:
    if src.is_file():
        if mask is not None and not mask.is_file():
            raise DataError(f"{mask}: no such file (the mask of one image is a file)")
        return [(src, mask)]
    images = sorted(path for path in src.iterdir() if path.name.endswith((".nii", ".nii.gz")))
    if not images:
        raise DataError(f"{src}: no NIfTI files (.nii, .nii.gz)")
    if mask is None:
        return [(image, None) for image in images]
    if not mask.is_dir():
        raise DataError(f"{mask}: expected a folder of masks named like the images in {src}")
    missing = [image.name for image in images if not (mask / image.name).is_file()]
    if missing:
        raise DataError(f"{mask}: no mask for {', '.join(missing)}")
    return [(image, mask / image.name) for image in images]


def read(src: Path, *, mask: str | Path | None = None,
         label_map: Mapping[int, int] | None = None) -> Iterator[tuple[Case, str]]:
    """Yields one HU case per NIfTI file, labelled when a mask is given (module docstring).

    Args:
        src: a NIfTI file or a folder of them.
        mask: the mask file (or folder of masks) matching ``src``. Defaults to none
            (unlabelled cases).
        label_map: dict of int to int applied to mask values first, e.g. ``{3: 0}``.
            Defaults to none.

    Raises:
        DataError: missing or bad files, a mask whose shape differs from its image's, or
            mask values not in 0, 1, 2 after ``label_map``.
    """
    src = Path(src)
    for image_path, mask_path in _pairs(src, None if mask is None else Path(mask)):
        image, spacing = read_nifti_hu(image_path)
        label = None
        if mask_path is not None:
            label, _ = read_nifti_labels(mask_path, label_map)
            checks.require_same_shape(label, mask_path, image, image_path)
        extra = {"file": image_path.name}
        if mask_path is not None:
            extra["mask_file"] = mask_path.name
        case = Case(nifti_stem(image_path), image=image, label=label, spacing_mm=spacing,
                    source=f"NIfTI {image_path.name}", extra=extra)
        yield case, str(image_path)
