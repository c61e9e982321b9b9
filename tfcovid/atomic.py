"""Output folders that are either complete or absent: written beside their target, then
renamed into place.

Example::

    with folder_replaced("reports/patient_7") as temporary:
        temporary.mkdir()
        (temporary / "severity.json").write_text("{}")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def folder_replaced(out: str | os.PathLike) -> Iterator[Path]:
    """Yields a fresh sibling path of ``out`` (not created) to write a folder into; when the
    block ends normally that folder replaces ``out``, whose earlier contents are moved aside
    and deleted only once the new ones are in place. When the block raises, the partial folder
    is deleted and ``out`` is left as it was.

    Args:
        out: the folder to write; its parent is created if missing.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    temporary, replaced = (out.with_name(f".{out.name}.{token}.{end}") for end in ("tmp", "old"))
    try:
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    if out.exists():
        os.replace(out, replaced)
    os.replace(temporary, out)
    shutil.rmtree(replaced, ignore_errors=True)
