"""Severity thresholds stored with a trained run (issue 6): fitted ones, else the reference.

``tfcovid severity fit`` writes ``severity_thresholds.json`` into the run folder: the fitted
(low, high) infection ratios (`tfcovid.severity.classes.fit_thresholds`) with what they were
fitted on (store, cases, ratio mode, lung masks) and the micro F1 they reach there. Everything
that classifies a run's predictions (``tfcovid predict``, ``tfcovid severity evaluate``) reads
them with `load_thresholds`, which falls back to ``classes.REFERENCE_THRESHOLDS`` when the run
has none, and records which it used (`SeverityThresholds.to_dict`).

Example:

>>> import tempfile
>>> run = tempfile.mkdtemp()
>>> load_thresholds(run).source
'reference'
>>> _ = save_thresholds(run, (0.02, 0.3), {"store": "phantom.h5", "cases": ["a", "b"]})
>>> stored = load_thresholds(run)
>>> stored.source, stored.values
('fitted', (0.02, 0.3))
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from tfcovid.errors import DataError
from tfcovid.severity import classes

THRESHOLDS_FILE = "severity_thresholds.json"


@dataclasses.dataclass(frozen=True)
class SeverityThresholds:
    """The (low, high) thresholds a run classifies with.

    Attributes:
        values: (low, high) infection ratios where classes 1 and 2 begin.
        source: "fitted" (read from ``path``) or "reference" (spec 9.2 defaults).
        path: the thresholds file, or None for the reference.
        fit: what the thresholds were fitted on (the file's ``fit`` entry), or None.
    """

    values: tuple[float, float]
    source: str
    path: str | None = None
    fit: dict | None = None

    def to_dict(self) -> dict:
        """JSON-ready ``{"values", "source", "path", "fit"}``."""
        return {"values": list(self.values), "source": self.source, "path": self.path,
                "fit": self.fit}


def load_thresholds(run_dir: str | os.PathLike) -> SeverityThresholds:
    """The thresholds stored with a run, or the reference thresholds when it has none.

    Raises:
        DataError: a thresholds file that is not valid JSON or holds no valid (low, high).
    """
    path = Path(run_dir) / THRESHOLDS_FILE
    if not path.is_file():
        return SeverityThresholds(tuple(classes.REFERENCE_THRESHOLDS), "reference")
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        values = classes.check_thresholds(stored["thresholds"])
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path}: not a severity thresholds file ({error}); run tfcovid "
                        f"severity fit again or delete it to use the reference thresholds"
                        ) from None
    return SeverityThresholds(values, "fitted", os.fspath(path), stored.get("fit"))


def save_thresholds(run_dir: str | os.PathLike, values: Sequence[float], fit: dict) -> Path:
    """Writes fitted thresholds into a run folder, atomically.

    Args:
        run_dir: the run folder.
        values: (low, high) with 0 <= low <= high.
        fit: JSON-ready description of the fit (store, cases, scores).

    Returns:
        the path written.

    Raises:
        ValueError: thresholds not ordered 0 <= low <= high.
    """
    values = classes.check_thresholds(values)
    path = Path(run_dir) / THRESHOLDS_FILE
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    content = {"thresholds": list(values), "reference": list(classes.REFERENCE_THRESHOLDS),
               "fit": fit}
    try:
        temporary.write_text(json.dumps(content, indent=1, allow_nan=False), encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
