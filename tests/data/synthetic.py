"""Tiny synthetic stores for the pipeline tests: values chosen so outputs can be checked by hand.

Every labelled slice holds a rectangular lesion (label 1, with a label-2 core) on a constant
background, so windowing, resizing and the mask/label relation are checkable in closed form.
"""

from __future__ import annotations

import numpy as np

from tfcovid.data.store import Case, write_store

LESION = (slice(10, 22), slice(14, 34))  # rows, cols of the label-1 rectangle
CORE = (slice(14, 18), slice(20, 28))  # label 2 inside it
BACKGROUND_HU, LESION_HU = -900, -300
PAD_HU = 3000  # outside a slice's true size; never reaches the pipeline output


def labelled_case(case_id: str, slices: int = 2, height: int = 40, width: int = 56,
                  patient_id: str = "", severity: int | None = None,
                  sizes: np.ndarray | None = None) -> Case:
    """A "hu" case whose slices show the lesion; ``sizes`` pads slices with ``PAD_HU``."""
    image = np.full((slices, height, width), BACKGROUND_HU, np.int16)
    label = np.zeros((slices, height, width), np.uint8)
    image[(slice(None),) + LESION] = LESION_HU
    label[(slice(None),) + LESION] = 1
    label[(slice(None),) + CORE] = 2
    if sizes is not None:
        for index, (true_height, true_width) in enumerate(sizes):
            image[index, true_height:, :] = PAD_HU
            image[index, :, true_width:] = PAD_HU
            label[index, true_height:, :] = 0
            label[index, :, true_width:] = 0
    return Case(case_id, image=image, label=label, sizes=sizes, patient_id=patient_id,
                severity=severity)


def unlabelled_case(case_id: str, slices: int = 3, height: int = 40, width: int = 56) -> Case:
    """A "hu" case without labels, image a horizontal HU ramp from -1350 to 150."""
    ramp = np.linspace(-1350, 150, width).round().astype(np.int16)
    return Case(case_id, image=np.broadcast_to(ramp, (slices, height, width)).copy())


def write_hu_store(path, with_unlabelled: bool = True) -> str:
    """Three labelled cases (one with padded, smaller slices) and optionally one unlabelled."""
    cases = [labelled_case("a", patient_id="p1"), labelled_case("b", slices=3, patient_id="p2"),
             labelled_case("c", sizes=np.array([[40, 56], [30, 41]], np.int32))]
    if with_unlabelled:
        cases.append(unlabelled_case("u"))
    write_store(path, cases, intensity="hu")
    return str(path)
