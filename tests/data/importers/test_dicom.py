"""DICOM importer: one series folder or a folder of series folders, and the real series."""

import numpy as np
import pytest

from tests.data.ct_files import hu_volume
from tests.data.readers.test_dicom import write_series
from tfcovid.data.importers import import_dataset
from tfcovid.data.store import CaseStore
from tfcovid.errors import DataError


def test_folder_of_series_gives_one_case_each(tmp_path):
    volumes = {"scan_a": hu_volume((4, 6, 5), seed=1), "scan_b": hu_volume((4, 6, 5), seed=2)}
    (tmp_path / "study").mkdir()
    for name, volume in volumes.items():
        write_series(tmp_path / "study" / name, volume)
    summary = import_dataset("dicom", tmp_path / "study", tmp_path / "ct.h5", progress=False)
    with CaseStore(tmp_path / "ct.h5") as store:
        assert store.intensity == "hu" and store.case_ids == ["scan_a", "scan_b"]
        for name, volume in volumes.items():
            case = store.read(name)
            np.testing.assert_array_equal(case.image, volume)
            assert case.spacing_mm == pytest.approx((3.75, 0.7, 0.8))
            assert case.patient_id == "anonymous-7" and not case.labelled
    assert summary["image_range"] == (min(int(v.min()) for v in volumes.values()),
                                      max(int(v.max()) for v in volumes.values()))


def test_bad_series_writes_nothing(tmp_path):
    write_series(tmp_path / "series", hu_volume((4, 6, 5)))
    (tmp_path / "series" / "b.dcm").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"b\.dcm: not a readable DICOM file"):
        import_dataset("dicom", tmp_path / "series", tmp_path / "ct.h5", progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["series"]


def test_real_series_imports_as_one_case(real_data_dir, tmp_path):
    summary = import_dataset("dicom", real_data_dir / "chest-CT-slice-lungmask",
                             tmp_path / "ct.h5", progress=False)
    assert (summary["cases"], summary["slices"], summary["image_range"]) == (1, 2, (-1024, 1502))
