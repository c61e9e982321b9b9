"""2-D slices and masks in PNG, JPEG or other Pillow formats.

Slices are 8-bit grey levels already windowed by their publisher (a ``windowed8`` store), not
Hounsfield units; a picture has no patient spacing, so none is returned.

Masks come in two encodings, told apart by the file itself:

- classes: a palette (mode P) PNG of indices 0 background, 1 ground-glass opacity (GGO),
  2 consolidation, as in COVID-SemiSeg's ``MultiClassInfection-*/GT``; the same mask converted
  to grey (0, 38, 75, the luminance of palette colours (128, 0, 0) and (0, 128, 0)), or stored
  as plain grey indices 0, 1, 2 (with at least one 2);
- binary: infection without a class, grey 0/255 (COVID-SemiSeg's ``LungInfection-*/GT``) or 0/1,
  or a 1-bit image; label 1 then means "infection".

Any other value is an error, so soft maps (the published pseudo labels) are never read as labels.

Example:

>>> import os, tempfile, numpy as np
>>> from PIL import Image
>>> path = os.path.join(tempfile.mkdtemp(), "mask.png")
>>> Image.fromarray(np.array([[0, 255, 255]], np.uint8)).save(path)
>>> labels, encoding = read_label_image(path)
>>> labels.tolist(), encoding
([[0, 1, 1]], 'binary')
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from tfcovid.data.readers import checks
from tfcovid.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_MAX_CHANNEL_SPREAD = 16  # a grey picture saved as colour JPEG: a few levels; a photo: many
_CLASS_GREY_LEVELS = {0: 0, 1: 1, 2: 2, 38: 1, 75: 2}
_COLOUR_MODES = ("RGB", "RGBA", "P", "LA")


def _open(path: str | os.PathLike) -> Image.Image:
    path = checks.require_file(path)
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from None
    return image


def read_grey_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an 8-bit greyscale CT slice.

    Grey pictures saved in a colour mode are accepted when their channels agree within
    16 grey levels (JPEG noise) and converted with Pillow's ``convert("L")``.

    Args:
        path: image file (PNG, JPEG, anything Pillow reads).

    Returns:
        uint8 array (height, width), grey levels 0-255.

    Raises:
        DataError: missing or unreadable file, not 8-bit, or a colour picture.
    """
    image = _open(path)
    if image.mode in _COLOUR_MODES:
        channels = np.asarray(image.convert("RGB"), dtype=np.int16)
        spread = int((channels.max(axis=2) - channels.min(axis=2)).max())
        if spread > _MAX_CHANNEL_SPREAD:
            raise DataError(f"{path}: colour image (channels differ by up to {spread} levels), "
                            f"not a greyscale CT slice")
        image = image.convert("L")
    elif image.mode != "L":
        raise DataError(f"{path}: image mode {image.mode!r}; expected an 8-bit greyscale CT "
                        f"slice (mode 'L')")
    return np.asarray(image, dtype=np.uint8)


def read_label_image(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Reads an infection mask image, telling class masks from binary ones (module docstring).

    Args:
        path: PNG (or other lossless) mask file.

    Returns:
        ``(labels, encoding)``: uint8 array (height, width) of 0/1/2 and "classes", or of 0/1
        and "binary".

    Raises:
        DataError: missing or unreadable file, or values that are neither encoding.
    """
    image = _open(path)
    if image.mode == "P":
        return checks.to_labels(np.asarray(image), path), "classes"
    if image.mode == "1":
        return np.asarray(image, dtype=np.uint8), "binary"
    values = np.asarray(image.convert("L") if image.mode != "L" else image)
    present = set(np.unique(values).tolist())
    if present <= {0, 1} or present <= {0, 255}:
        return (values > 0).astype(np.uint8), "binary"
    if present <= set(_CLASS_GREY_LEVELS):
        return checks.to_labels(values, path, _CLASS_GREY_LEVELS), "classes"
    raise DataError(f"{path}: unknown mask values {sorted(present - set(_CLASS_GREY_LEVELS))}; "
                    f"expected binary 0/255 or 0/1, or classes 0/1/2 (palette indices, or grey "
                    f"0/38/75)")
