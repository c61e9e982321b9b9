"""Tiny CT files in their real on-disk formats (NIfTI, DICOM, PNG/JPEG), for reader tests."""

from __future__ import annotations

import nibabel
import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

# RAS+ affines: voxel axes x, y, z point to patient right, anterior, superior (RAS) or to left,
# posterior, superior (LPS, as DICOM stores axial slices).
RAS_AFFINE = np.diag([0.8, 0.7, 2.5, 1.0])
LPS_AFFINE = np.diag([-0.8, -0.7, 2.5, 1.0])


def hu_volume(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Even int16 HU values in [-1024, 1500] (exact under a rescale slope of 2), a quarter air."""
    rng = np.random.default_rng(seed)
    volume = (rng.integers(-512, 750, size=shape) * 2).astype(np.int16)
    volume[rng.random(shape) < 0.25] = -1000
    return volume


def write_nifti(path, data: np.ndarray, affine: np.ndarray = RAS_AFFINE) -> None:
    nibabel.save(nibabel.Nifti1Image(data, affine), path)


def write_ct_dicom(path, hu: np.ndarray, z_mm: float, series_uid: str, *, slope: float = 2.0,
                   intercept: float = -1024.0, orientation=(1, 0, 0, 0, 1, 0),
                   pixel_spacing=(0.7, 0.8), **attributes) -> None:
    """Writes one CT slice of ``hu`` (rows, columns) as unsigned stored values and a rescale."""
    stored = np.round((hu.astype(np.float64) - intercept) / slope).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = pydicom.Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = CTImageStorage
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "CT"
    dataset.PatientID = "anonymous-7"
    dataset.StudyInstanceUID = "1.2.3.4"
    dataset.SeriesInstanceUID = series_uid
    dataset.ImagePositionPatient = [0.0, 0.0, z_mm]
    dataset.ImageOrientationPatient = list(orientation)
    dataset.PixelSpacing = list(pixel_spacing)
    dataset.SliceThickness = 2.5
    dataset.Rows, dataset.Columns = hu.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 0
    dataset.RescaleSlope = slope
    dataset.RescaleIntercept = intercept
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    dataset.PixelData = stored.tobytes()
    dataset.save_as(path, enforce_file_format=True)


def write_grey(path, image: np.ndarray, **save_options) -> None:
    Image.fromarray(image.astype(np.uint8)).save(path, **save_options)


def write_palette_mask(path, labels: np.ndarray) -> None:
    """The COVID-SemiSeg multi-class encoding: indices 0, 1 (128, 0, 0), 2 (0, 128, 0)."""
    image = Image.fromarray(labels.astype(np.uint8))
    image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0])  # makes the "L" image a palette "P" one
    image.save(path)


def pillow_pixels(path) -> np.ndarray:
    """Pixels as Pillow decodes them: the reference for lossy JPEG round trips."""
    with Image.open(path) as image:
        return np.asarray(image.convert("L"))
