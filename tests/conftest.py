"""Shared fixtures: the location of the real CT data and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$TFCOVID_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("TFCOVID_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real CT data folder; the test is skipped when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real CT data not found at {path} (set TFCOVID_SHARED_DATA)")
    return path
