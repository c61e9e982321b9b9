"""Inf-Net's COVID-SemiSeg slices (8-bit windowed JPEGs) with their doctor labels.

Two layouts are recognised in ``src``:

- the published one (``TrainingSet/``, ``TestingSet/``; see Fan et al., IEEE TMI 2020):

  ========== ========================================== =======================================
  split      images                                     labels, first found
  ========== ========================================== =======================================
  train      ``TrainingSet/LungInfection-Train/         ``TrainingSet/MultiClassInfection-Train/
             Doctor-label/Imgs``                        GT``, else ``Doctor-label/GT``
  test       ``TestingSet/LungInfection-Test/Imgs``     ``TestingSet/MultiClassInfection-Test/
                                                        GT``, else ``LungInfection-Test/GT``
  unlabelled ``TrainingSet/LungInfection-Train/         none: the published pseudo labels are
             Pseudo-label/Imgs``                        model output, named in ``extra`` only
  ========== ========================================== =======================================

- a generic one: ``src/Imgs`` with optional ``src/GT`` (``Edge/`` and ``Prior/`` are ignored),
  one split named by ``split``; without ``GT/`` every slice is unlabelled.

Slices are cropped to the lungs and differ in size, so each slice is a one-slice case
``<split>_<file stem>`` (``train_0``, ``test_6``, ``unlabelled_Data-1_coronacases_org_001_12``)
with ``extra["split"]``. Each mask must have its image's size.

Label policy (``tfcovid.data.readers.png.read_label_image``): a multi-class mask gives
0 background, 1 ground-glass opacity, 2 consolidation and ``extra["label_kind"] = "classes"``;
a binary-only mask gives 1 = infection of unknown class and ``extra["label_kind"] = "binary"``,
so store summaries count binary infection under GGO. In the published data every labelled slice
has a multi-class mask.

Patients: the labelled slices are MedSeg slices whose patients are unknown (``patient_id``
empty). The unlabelled names ``Data-1_<scan>_<k>`` carry 20 scan names from Ma Jun et al.'s
COVID-19 CT Lung and Infection Segmentation Dataset; ``patient_id`` is the scan, except that
Radiopaedia scans ``radiopaedia_org_covid-19-pneumonia-<case>_<study>_<series>-dcm`` are grouped
by Radiopaedia case (10_85902_1 and 10_85902_3 are two series of one study; 29_86490 and
29_86491 two studies of case 29), giving 18 patients, so splits never leak across a patient.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tfcovid.data.readers import checks
from tfcovid.data.readers.png import IMAGE_SUFFIXES, read_grey_image, read_label_image
from tfcovid.data.store import Case
from tfcovid.errors import DataError

DESCRIPTION = "Inf-Net COVID-SemiSeg: TrainingSet/, TestingSet/ (or one Imgs/ + GT/ folder)"
_TRAIN = Path("TrainingSet")
_TEST = Path("TestingSet")
_UNLABELLED_IMAGES = _TRAIN / "LungInfection-Train/Pseudo-label/Imgs"
_PSEUDO_LABELS = _TRAIN / "LungInfection-Train/Pseudo-label/GT"
LABELLED_SPLITS = {
    "train": (_TRAIN / "LungInfection-Train/Doctor-label/Imgs",
              (_TRAIN / "MultiClassInfection-Train/GT",
               _TRAIN / "LungInfection-Train/Doctor-label/GT")),
    "test": (_TEST / "LungInfection-Test/Imgs",
             (_TEST / "MultiClassInfection-Test/GT", _TEST / "LungInfection-Test/GT")),
}
_RADIOPAEDIA_SCAN = re.compile(r"(radiopaedia_org_covid-19-pneumonia-\d+)_\d+_\d+-dcm")


def _images(folder: Path) -> list[Path]:
    images = sorted(path for path in folder.iterdir()
                    if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."))
    if not images:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def _labelled_slices(src: Path, split: str, image_folder: Path, mask_folders: tuple[Path, ...]
                     ) -> Iterator[tuple[Case, str]]:
    for image_path in _images(src / image_folder):
        mask_path = next((src / folder / f"{image_path.stem}.png" for folder in mask_folders
                          if (src / folder / f"{image_path.stem}.png").is_file()), None)
        if mask_path is None:
            raise DataError(f"{image_path}: no mask {image_path.stem}.png in "
                            f"{' or '.join(str(folder) for folder in mask_folders)}")
        image = read_grey_image(image_path)
        label, label_kind = read_label_image(mask_path)
        checks.require_same_shape(label, mask_path, image, image_path)
        case = Case(f"{split}_{image_path.stem}", image=image[None], label=label[None],
                    source=f"COVID-SemiSeg {image_path.relative_to(src)}",
                    extra={"split": split, "file": image_path.relative_to(src).as_posix(),
                           "label_file": mask_path.relative_to(src).as_posix(),
                           "label_kind": label_kind})
        yield case, str(image_path)


def scan_and_patient(stem: str) -> tuple[str, str]:
    """Scan and patient of an unlabelled slice name ``Data-1_<scan>_<k>`` (module docstring).

    >>> scan_and_patient("Data-1_radiopaedia_org_covid-19-pneumonia-10_85902_3-dcm_7")
    ('radiopaedia_org_covid-19-pneumonia-10_85902_3-dcm', 'radiopaedia_org_covid-19-pneumonia-10')
    """
    scan = stem.rsplit("_", 1)[0].removeprefix("Data-1_")
    match = _RADIOPAEDIA_SCAN.fullmatch(scan)
    return scan, match.group(1) if match else scan


def _unlabelled_slices(src: Path, split: str, image_folder: Path, infnet_names: bool
                       ) -> Iterator[tuple[Case, str]]:
    for image_path in _images(src / image_folder):
        extra = {"split": split, "file": image_path.relative_to(src).as_posix()}
        patient_id = ""
        if infnet_names:
            extra["scan"], patient_id = scan_and_patient(image_path.stem)
            pseudo_label = _PSEUDO_LABELS / f"{image_path.stem}.png"
            if (src / pseudo_label).is_file():
                extra["pseudo_label_file"] = pseudo_label.as_posix()
        case = Case(f"{split}_{image_path.stem}", image=read_grey_image(image_path)[None],
                    source=f"COVID-SemiSeg {image_path.relative_to(src)}", patient_id=patient_id,
                    extra=extra)
        yield case, str(image_path)


def read(src: Path, *, include_unlabelled: bool = True, split: str = "train"
         ) -> Iterator[tuple[Case, str]]:
    """Yields COVID-SemiSeg slices as one-slice cases (module docstring) with their files.

    Args:
        src: the COVID-SemiSeg folder, or a folder holding ``Imgs/`` and optionally ``GT/``.
        include_unlabelled: bool. Also import the 1600 unlabelled slices of the published
            layout. Defaults to True.
        split: str. Split name of the generic layout, in case ids and ``extra["split"]``.
            Defaults to "train".

    Raises:
        DataError: neither layout in ``src``, an image without a mask, a mask whose size
            differs from its image's, or a bad image or mask file.
    """
    src = Path(src)
    if (src / "Imgs").is_dir():
        if (src / "GT").is_dir():
            yield from _labelled_slices(src, split, Path("Imgs"), (Path("GT"),))
        else:
            yield from _unlabelled_slices(src, split, Path("Imgs"), infnet_names=False)
        return
    found = [(name, folders) for name, folders in LABELLED_SPLITS.items()
             if (src / folders[0]).is_dir()]
    if not found and not (src / _UNLABELLED_IMAGES).is_dir():
        raise DataError(f"{src}: not a COVID-SemiSeg folder (no TrainingSet/, TestingSet/ or "
                        f"Imgs/)")
    for name, (image_folder, mask_folders) in found:
        yield from _labelled_slices(src, name, image_folder, mask_folders)
    if include_unlabelled and (src / _UNLABELLED_IMAGES).is_dir():
        yield from _unlabelled_slices(src, "unlabelled", _UNLABELLED_IMAGES, infnet_names=True)
