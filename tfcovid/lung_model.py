"""A learned lung segmenter: a network trained on lung masks instead of infection (issue 6).

The classical segmenter (`tfcovid.severity.lung`) needs no weights; the seed report trained a
U-Net for the lung field instead. tfcovid trains one with the ordinary engine:

1. `write_lung_store` (``tfcovid severity lung-store SRC DST``) turns a store whose cases carry
   ``lung`` masks into one whose ``label`` is that mask: 1 lung, 0 elsewhere (cases without a
   lung mask are left out);
2. any segmentation run on that store learns the lung as class 1, e.g.
   ``tfcovid train unet_lung_phantom_small`` (a tiny multi-class U-Net);
3. `segment_lungs_learned` predicts every slice with the run (`tfcovid.predict.Predictor`: its
   HU window, resizing to the network and back), takes the voxels whose most probable class is
   not background as lung and names the right and left lung (`tfcovid.severity.lung.label_lungs`).

``tfcovid predict --lung-model RUN_DIR`` and ``tfcovid severity fit|evaluate --lung-model
RUN_DIR`` then use it in place of the classical segmenter (and of stored masks).

Example (a store with lung masks, then a run trained on the lung store)::

    write_lung_store("phantom_small.h5", "phantom_lung.h5")
    lungs = segment_lungs_learned(load_lung_predictor("runs/lung_small", 2), volume_hu,
                                  spacing_mm)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tfcovid import inference
from tfcovid.data.store import CaseStore, write_store
from tfcovid.errors import DataError
from tfcovid.severity import lung

if TYPE_CHECKING:  # tfcovid.predict imports this module
    from tfcovid.predict import Predictor


def write_lung_store(source: str | os.PathLike, target: str | os.PathLike,
                     overwrite: bool = False) -> int:
    """Writes the cases of ``source`` that have a lung mask with that mask as their label.

    Args:
        source: a store whose cases carry ``lung`` masks.
        target: the new store, written atomically.
        overwrite: bool. Replace an existing ``target``. Defaults to False.

    Returns:
        the number of cases written.

    Raises:
        DataError: ``source`` missing or with no lung mask at all; ``target`` exists and
            ``overwrite`` is False.
    """
    with CaseStore(source) as store:
        with_lungs = [case_id for case_id in store.case_ids
                      if store.case_attributes(case_id)["has_lung"]]
        if not with_lungs:
            raise DataError(f"{source}: no case has a lung mask; a lung segmenter learns from "
                            f"lung masks (e.g. a phantom or MedSeg store)")
        cases = (dataclasses.replace(case, label=(case.lung > 0).astype(np.uint8))
                 for case in map(store.read, with_lungs))
        return write_store(target, cases, store.intensity,
                           name=f"lung masks of {store.name or source}", overwrite=overwrite)


def load_lung_predictor(run_dir: str | os.PathLike, batches_at_once: int) -> Predictor:
    """Loads a lung run for `segment_lungs_learned`: its best weights, else its final ones;
    ``batches_at_once`` as `tfcovid.predict.Predictor` (callers pass their infection
    predictor's, so both networks run alike).

    Raises:
        ValueError: ``batches_at_once`` < 1.
        DataError: a missing or unfinished run.
    """
    from tfcovid import predict

    return predict.load_predictor(run_dir, inference.best_or_final(run_dir),
                                  batches_at_once=batches_at_once)


def segment_lungs_learned(predictor: Predictor, volume_hu: np.ndarray,
                          spacing_mm: Sequence[float], batch_size: int = 8) -> np.ndarray:
    """Right and left lung of a CT volume, by a run trained on lung masks (module docstring).

    Args:
        predictor: the lung run, loaded (`load_lung_predictor`).
        volume_hu: array (slices, rows, columns), HU.
        spacing_mm: (slice, row, column) voxel size, mm.
        batch_size: int >= 1. Slices per forward pass. Defaults to 8.

    Returns:
        uint8 array shaped like ``volume_hu``: 0 outside, 1 right lung, 2 left lung.

    Raises:
        ValueError: ``volume_hu`` not 3-D, or ``batch_size`` < 1.
    """
    volume_hu = np.asarray(volume_hu)
    if volume_hu.ndim != 3 or batch_size < 1:
        raise ValueError(f"volume_hu must be (slices, rows, columns) and batch_size >= 1. "
                         f"Received: shape={volume_hu.shape}, batch_size={batch_size}")
    mask = np.concatenate([outputs["label"] > 0
                           for _, outputs in predictor.predict_batches(volume_hu, batch_size)])
    return lung.label_lungs(mask, spacing_mm)
