"""Progress bars for long work, written to stderr and hidden when it is not a terminal."""

from __future__ import annotations

from collections.abc import Iterable

from tqdm import tqdm


def progress_bar(iterable: Iterable, total: int | None = None, description: str = "",
                 enabled: bool = True, unit: str = "it") -> Iterable:
    """Wraps ``iterable`` in a tqdm bar.

    Args:
        iterable: what to iterate over.
        total: number of items, when ``iterable`` has no ``len``.
        description: text shown before the bar.
        enabled: bool. False never shows a bar; True shows one only on a terminal.
        unit: name of one item.
    """
    return tqdm(iterable, total=total, desc=description, unit=unit, leave=False,
                disable=None if enabled else True, dynamic_ncols=True)
