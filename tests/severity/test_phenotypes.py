"""Tests of tfcovid.severity.phenotypes: the infected-lung region, status flags and the CSV."""

import math

import numpy as np
import pytest

from tfcovid.severity import phenotypes, radiomics

SHAPE = (3, 6, 7)


def case():
    rng = np.random.default_rng(0)
    volume = rng.normal(-700, 120, SHAPE).round().astype(np.int16)
    lung = np.zeros(SHAPE, np.uint8)
    lung[:, 1:5, 1:6] = 1
    labels = np.zeros(SHAPE, np.uint8)
    labels[1:3, 2:4, 2:5] = 1
    labels[2, 3, 4] = 2
    labels[0, 0, 0] = 1          # outside the lung: not part of the region
    return volume, labels, lung


def test_region_is_infection_inside_the_lung():
    volume, labels, lung = case()
    row = phenotypes.infection_phenotypes(volume, labels, lung, (5.0, 0.7, 0.7))
    region = (labels > 0) & (lung > 0)
    assert row["phenotype_status"] == "ok" and row["infected_voxels"] == 12
    assert row["original_firstorder_Mean"] == pytest.approx(volume[region].mean())
    assert row["original_firstorder_TotalEnergy"] == pytest.approx(
        5.0 * 0.7 * 0.7 * np.sum(volume[region].astype(float) ** 2))
    assert list(row)[2:] == list(radiomics.FEATURE_NAMES)


@pytest.mark.parametrize("voxels, status", [(0, "empty"), (1, "too_small")])
def test_empty_or_single_voxel_region_is_flagged_with_nan_features(voxels, status):
    volume, _, lung = case()
    labels = np.zeros(SHAPE, np.uint8)
    labels[1, 2, 2:2 + voxels] = 2
    row = phenotypes.infection_phenotypes(volume, labels, lung, (1.0, 1.0, 1.0))
    assert row["phenotype_status"] == status and row["infected_voxels"] == voxels
    assert all(math.isnan(row[name]) for name in radiomics.FEATURE_NAMES)


def test_shapes_must_agree():
    volume, labels, lung = case()
    with pytest.raises(ValueError, match=r"one shape. Received: shapes \(3, 6, 7\), \(6, 7\)"):
        phenotypes.infection_phenotypes(volume, labels[0], lung, (1, 1, 1))


def test_csv_round_trip_writes_nan_as_empty_cells(tmp_path):
    volume, labels, lung = case()
    ok = phenotypes.infection_phenotypes(volume, labels, lung, (1.0, 1.0, 1.0))
    empty = phenotypes.infection_phenotypes(volume, np.zeros(SHAPE, np.uint8), lung,
                                            (1.0, 1.0, 1.0))
    rows = [{"scan": "p1", "severity_class": 1, "severity_name": "severe",
             "infected_fraction": 0.125, **ok},
            {"scan": "p2", "severity_class": 0, "severity_name": "mild",
             "infected_fraction": 0.0, **empty}]
    path = tmp_path / "phenotypes.csv"
    assert phenotypes.write_csv(path, rows) == 2
    read = phenotypes.read_csv(path)
    assert list(read[0]) == list(phenotypes.CSV_COLUMNS)
    assert float(read[0]["original_glcm_Contrast"]) == ok["original_glcm_Contrast"]
    assert read[1]["original_glcm_Contrast"] == "" and read[1]["phenotype_status"] == "empty"
    assert [entry.name for entry in tmp_path.iterdir()] == ["phenotypes.csv"]
    with pytest.raises(ValueError, match=r"missing \['scan'\]"):
        phenotypes.write_csv(path, [{key: value for key, value in rows[0].items()
                                     if key != "scan"}])
    assert [entry.name for entry in tmp_path.iterdir()] == ["phenotypes.csv"]
