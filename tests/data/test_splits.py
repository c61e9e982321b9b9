"""Tests of tfcovid.data.splits: patient-level properties, stratification, seeds."""

import collections

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.data import synthetic
from tfcovid.data import splits
from tfcovid.data.store import write_store


def cohort(patients=30, seed=0):
    """Cases c0, c1, ... of ``patients`` patients with 1-3 cases each and severities 0-2."""
    rng = np.random.default_rng(seed)
    case_ids, patient_ids, severities = [], [], []
    for patient in range(patients):
        severity = int(rng.integers(0, 3))
        for _ in range(int(rng.integers(1, 4))):
            case_ids.append(f"c{len(case_ids)}")
            patient_ids.append(f"p{patient}")
            severities.append(severity)
    return case_ids, patient_ids, severities


def patients_of(case_ids, patient_of):
    return {patient_of[case_id] for case_id in case_ids}


@settings(max_examples=25, deadline=None)
@given(st.integers(4, 40), st.integers(0, 10**6), st.booleans())
def test_train_val_test_split_properties(patients, seed, stratify):
    case_ids, patient_ids, severities = cohort(patients, seed)
    split = splits.train_val_test_split(case_ids, (0.6, 0.2, 0.2), patient_ids=patient_ids,
                                        severities=severities if stratify else None, seed=seed)
    parts = (split.train, split.val, split.test)
    assert sorted(sum(parts, [])) == sorted(case_ids)  # union = all, nothing twice
    patient_of = dict(zip(case_ids, patient_ids))
    owners = [patients_of(part, patient_of) for part in parts]
    assert not (owners[0] & owners[1] or owners[0] & owners[2] or owners[1] & owners[2])
    if not stratify:
        # each cut lands within half a patient (<= 1.5 cases) of its target; a part has two
        for part, fraction in zip(parts, (0.6, 0.2, 0.2)):
            assert abs(len(part) - fraction * len(case_ids)) <= 3.0


def test_fractions_and_strata_are_near_requested():
    case_ids, patient_ids, severities = cohort(300, seed=1)
    split = splits.train_val_test_split(case_ids, (0.7, 0.15, 0.15), patient_ids=patient_ids,
                                        severities=severities, seed=4)
    total = len(case_ids)
    assert abs(len(split.train) / total - 0.7) < 0.02
    assert abs(len(split.val) / total - 0.15) < 0.02
    severity_of = dict(zip(case_ids, severities))
    for severity in (0, 1, 2):
        in_class = [case for case in case_ids if severity_of[case] == severity]
        in_train = [case for case in split.train if severity_of[case] == severity]
        assert abs(len(in_train) / len(in_class) - 0.7) < 0.03


def test_same_seed_same_split_other_seed_other_split():
    case_ids, patient_ids, _ = cohort(30)
    first = splits.train_val_test_split(case_ids, patient_ids=patient_ids, seed=7)
    assert first == splits.train_val_test_split(case_ids, patient_ids=patient_ids, seed=7)
    assert first != splits.train_val_test_split(case_ids, patient_ids=patient_ids, seed=8)


def test_empty_patient_id_falls_back_to_the_case():
    split = splits.train_val_test_split(["a", "b", "c", "d"], (0.5, 0.5, 0.0),
                                        patient_ids=["", "", "", ""], seed=0)
    assert len(split.train) == 2 and len(split.val) == 2 and split.test == []


def test_bad_arguments_are_echoed():
    with pytest.raises(ValueError, match=r"fractions=\(0.5, 0.5, 0.5\)"):
        splits.train_val_test_split(["a", "b"], (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"2 ids, 1 distinct"):
        splits.train_val_test_split(["a", "a"])
    with pytest.raises(ValueError, match=r"folds=4"):
        splits.k_fold_split(["a", "b", "c"], 4)


@pytest.mark.parametrize("stratify", [False, True])
def test_k_folds_are_disjoint_cover_everything_and_keep_patients_whole(stratify):
    case_ids, patient_ids, severities = cohort(25, seed=2)
    folds = splits.k_fold_split(case_ids, 5, patient_ids=patient_ids,
                                severities=severities if stratify else None, seed=3)
    assert len(folds) == 5
    held_out = collections.Counter(case for fold in folds for case in fold.held_out)
    assert sorted(held_out) == sorted(case_ids) and set(held_out.values()) == {1}
    patient_of = dict(zip(case_ids, patient_ids))
    for fold in folds:
        assert sorted(fold.train + fold.held_out) == sorted(case_ids)
        assert not patients_of(fold.train, patient_of) & patients_of(fold.held_out, patient_of)
        assert fold.held_out  # no empty fold
    again = splits.k_fold_split(case_ids, 5, patient_ids=patient_ids,
                                severities=severities if stratify else None, seed=3)
    assert folds == again


def test_store_case_table(tmp_path):
    path = tmp_path / "s.h5"
    write_store(path, [synthetic.labelled_case("a", patient_id="p1", severity=2),
                       synthetic.unlabelled_case("u")], intensity="hu")
    assert splits.store_case_table(path) == (["a", "u"], ["p1", ""], [2, None])
    assert splits.store_case_table(path, labelled_only=True) == (["a"], ["p1"], [2])


def test_a_small_stratified_cohort_still_fills_every_part():
    # 6 patients, 2 per severity class: a 0.5/0.17/0.33 split needs 3/1/2 patients
    case_ids = [f"p{index}" for index in range(6)]
    for seed in range(20):
        split = splits.train_val_test_split(case_ids, (0.5, 0.17, 0.33),
                                            severities=[0, 0, 1, 1, 2, 2], seed=seed)
        assert (len(split.train), len(split.val), len(split.test)) == (3, 1, 2)
