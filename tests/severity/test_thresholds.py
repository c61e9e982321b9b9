"""Tests of tfcovid.severity.thresholds: reference fallback, round trip, corrupt files."""

import json

import pytest

from tfcovid.errors import DataError
from tfcovid.severity import classes, thresholds


def test_reference_without_a_file_and_fitted_after_saving(tmp_path):
    reference = thresholds.load_thresholds(tmp_path)
    assert reference.to_dict() == {"values": list(classes.REFERENCE_THRESHOLDS),
                                   "source": "reference", "path": None, "fit": None}
    path = thresholds.save_thresholds(tmp_path, [0.03, 0.2], {"store": "a.h5", "f1": 0.75})
    assert path == tmp_path / thresholds.THRESHOLDS_FILE
    assert [entry.name for entry in tmp_path.iterdir()] == [thresholds.THRESHOLDS_FILE]
    stored = thresholds.load_thresholds(tmp_path)
    assert stored.values == (0.03, 0.2) and stored.source == "fitted"
    assert stored.path == str(path) and stored.fit == {"store": "a.h5", "f1": 0.75}
    assert json.loads(path.read_text())["reference"] == list(classes.REFERENCE_THRESHOLDS)


@pytest.mark.parametrize("content", ["{not json", '{"fit": {}}', '{"thresholds": [0.5, 0.1]}',
                                     '{"thresholds": "low"}'])
def test_corrupt_file_is_a_one_line_error(tmp_path, content):
    (tmp_path / thresholds.THRESHOLDS_FILE).write_text(content)
    with pytest.raises(DataError, match=r"severity_thresholds\.json: not a severity thresholds "
                                        r"file \(.*\); run tfcovid severity fit again") as error:
        thresholds.load_thresholds(tmp_path)
    assert "\n" not in str(error.value)


def test_unordered_thresholds_are_not_saved(tmp_path):
    with pytest.raises(ValueError, match=r"thresholds=\(0.4, 0.2\)"):
        thresholds.save_thresholds(tmp_path, (0.4, 0.2), {})
    assert list(tmp_path.iterdir()) == []
