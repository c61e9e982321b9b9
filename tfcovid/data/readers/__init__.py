"""Readers: CT files (NIfTI, DICOM, PNG/JPEG) into NumPy arrays, checked on the way in.

Volumes come back as ``(slices, rows, columns)`` arrays in the radiological convention of
``orientation`` (rows anterior -> posterior, columns patient right -> left), with the
(slice, row, column) spacing in mm. Every problem with a file raises ``DataError`` with one line
``<file>: <problem>``.
"""

from tfcovid.data.readers.dicom import read_dicom_series
from tfcovid.data.readers.nifti import read_nifti, read_nifti_hu, read_nifti_labels
from tfcovid.data.readers.png import read_grey_image, read_label_image

__all__ = ["read_dicom_series", "read_grey_image", "read_label_image", "read_nifti",
           "read_nifti_hu", "read_nifti_labels"]
