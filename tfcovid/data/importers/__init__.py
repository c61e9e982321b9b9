"""Importers: public COVID-19 CT data sets in their published layouts, into the HDF5 case store.

Each importer is a generator ``read(src, **options)`` yielding ``(case, origin)`` pairs, where
``origin`` is the file a case came from (named in errors); ``import_dataset`` streams them into a
store, so nothing is written unless every case is read and valid.

=========  ===========  ==========================================================
name       intensity    source
=========  ===========  ==========================================================
dicom      hu           a DICOM CT series folder (or a folder of series folders)
ictcf      windowed8    iCTCF-style slices ``<patient>_<k>.png`` plus a clinical CSV
medseg     hu           MedSeg COVID-19 CT segmentation (``tr_im.nii.gz``, ``rp_im/``)
nifti      hu           any NIfTI CT, with an optional infection mask
semiseg    windowed8    Inf-Net's COVID-SemiSeg (or one ``Imgs/``, ``GT/`` folder)
=========  ===========  ==========================================================
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from tfcovid.data.importers import dicom, ictcf, medseg, nifti, semiseg
from tfcovid.data.store import Case, CaseStore, StoreWriter
from tfcovid.errors import DataError
from tfcovid.progress import progress_bar


@dataclasses.dataclass(frozen=True)
class Importer:
    """One data set format.

    Args:
        name: str. Registry key, e.g. "medseg".
        intensity: str. Store intensity kind, "hu" or "windowed8".
        read: callable ``read(src: Path, **options)`` yielding ``(case, origin file)``.
        description: str. One line for ``tfcovid data import --help``.
    """

    name: str
    intensity: str
    read: Callable[..., Iterator[tuple[Case, str]]]
    description: str

    def options(self) -> list[str]:
        """Names of the keyword options ``read`` accepts."""
        return [parameter.name for parameter in inspect.signature(self.read).parameters.values()
                if parameter.kind == inspect.Parameter.KEYWORD_ONLY]


IMPORTERS: dict[str, Importer] = {
    importer.name: importer for importer in (
        Importer("dicom", "hu", dicom.read, dicom.DESCRIPTION),
        Importer("ictcf", "windowed8", ictcf.read, ictcf.DESCRIPTION),
        Importer("medseg", "hu", medseg.read, medseg.DESCRIPTION),
        Importer("nifti", "hu", nifti.read, nifti.DESCRIPTION),
        Importer("semiseg", "windowed8", semiseg.read, semiseg.DESCRIPTION),
    )
}


def import_dataset(kind: str, src: str | os.PathLike, out: str | os.PathLike, *,
                   overwrite: bool = False, progress: bool = True, **options) -> dict:
    """Imports a data set into a new store, atomically.

    Args:
        kind: str. Importer name, a key of ``IMPORTERS``.
        src: the data set's file or folder.
        out: store file to write (``.h5``).
        overwrite: bool. Replace an existing ``out``. Defaults to False.
        progress: bool. Show a progress bar over cases on a terminal. Defaults to True.
        **options: the importer's own options (``Importer.options()``), e.g.
            ``effusion_label=0`` for "medseg".

    Returns:
        ``CaseStore(out).summary()`` of the new store.

    Raises:
        DataError: unknown ``kind``, missing ``src``, an existing ``out`` without
            ``overwrite``, or any bad input file; ``out`` is then left as it was.
        TypeError: an option the importer does not take.
    """
    if kind not in IMPORTERS:
        raise DataError(f"unknown data set kind {kind!r}; known: {', '.join(sorted(IMPORTERS))}")
    importer = IMPORTERS[kind]
    unknown = sorted(set(options) - set(importer.options()))
    if unknown:
        raise TypeError(f"importer {kind!r} takes options {importer.options()}. Received: "
                        f"{unknown}")
    src = Path(src)
    if not src.exists():
        raise DataError(f"{src}: no such file or folder")
    with StoreWriter(out, importer.intensity, name=f"{kind} {src.name}",
                     overwrite=overwrite) as writer:
        cases = progress_bar(importer.read(src, **options), description=f"import {kind}",
                             enabled=progress, unit="case")
        for case, origin in cases:
            writer.add(case, origin)
    with CaseStore(out) as store:
        return store.summary()
