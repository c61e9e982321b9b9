"""COVID-SemiSeg importer: a tiny Inf-Net layout, the generic layout, and the real data set."""

import numpy as np
import pytest

from tests.data.ct_files import pillow_pixels, write_grey, write_palette_mask
from tfcovid.data.importers import import_dataset, semiseg
from tfcovid.data.store import CaseStore
from tfcovid.errors import DataError

TRAIN = "TrainingSet/LungInfection-Train"
TEST = "TestingSet/LungInfection-Test"
UNLABELLED_NAMES = ("Data-1_coronacases_org_001_12",
                    "Data-1_radiopaedia_org_covid-19-pneumonia-10_85902_1-dcm_3",
                    "Data-1_radiopaedia_org_covid-19-pneumonia-10_85902_3-dcm_40")


def slice_pixels(height, width, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(height, width)).astype(np.uint8)


def class_mask(height, width, seed):
    return np.random.default_rng(seed).integers(0, 3, size=(height, width)).astype(np.uint8)


def make_infnet(root):
    """Train slices 0 (multi-class mask) and 1 (binary mask only), test slice 6, 3 unlabelled."""
    for folder in (f"{TRAIN}/Doctor-label/Imgs", f"{TRAIN}/Doctor-label/GT",
                   "TrainingSet/MultiClassInfection-Train/GT", f"{TEST}/Imgs", f"{TEST}/GT",
                   "TestingSet/MultiClassInfection-Test/GT", f"{TRAIN}/Pseudo-label/Imgs",
                   f"{TRAIN}/Pseudo-label/GT"):
        (root / folder).mkdir(parents=True)
    labels = {"train_0": class_mask(33, 40, 0), "train_1": class_mask(35, 38, 1) > 0,
              "test_6": class_mask(36, 41, 2)}
    for case_id, folder, multi_class_folder in (
            ("train_0", f"{TRAIN}/Doctor-label", "TrainingSet/MultiClassInfection-Train/GT"),
            ("train_1", f"{TRAIN}/Doctor-label", None),
            ("test_6", TEST, "TestingSet/MultiClassInfection-Test/GT")):
        name, label = case_id.split("_")[1], labels[case_id]
        write_grey(root / folder / "Imgs" / f"{name}.jpg", slice_pixels(*label.shape, int(name)))
        write_grey(root / folder / "GT" / f"{name}.png", (label > 0) * 255)
        if multi_class_folder:
            write_palette_mask(root / multi_class_folder / f"{name}.png", label)
    for index, name in enumerate(UNLABELLED_NAMES):
        write_grey(root / TRAIN / "Pseudo-label/Imgs" / f"{name}.jpg",
                   slice_pixels(30 + index, 32, 10 + index))
        write_grey(root / TRAIN / "Pseudo-label/GT" / f"{name}.png",
                   np.full((30 + index, 32), 100))  # a soft map, never read as a label
    return labels


def test_infnet_layout_round_trips(tmp_path):
    labels = make_infnet(tmp_path / "semiseg")
    summary = import_dataset("semiseg", tmp_path / "semiseg", tmp_path / "semiseg.h5",
                             progress=False)
    with CaseStore(tmp_path / "semiseg.h5") as store:
        assert store.intensity == "windowed8"
        assert store.case_ids == sorted(["train_0", "train_1", "test_6"]
                                        + [f"unlabelled_{name}" for name in UNLABELLED_NAMES])
        for case_id, label in labels.items():
            case = store.read(case_id)
            np.testing.assert_array_equal(case.label[0], label)
            np.testing.assert_array_equal(
                case.image[0], pillow_pixels(tmp_path / "semiseg" / case.extra["file"]))
            assert case.extra["split"] == case_id.split("_")[0]
        assert store.read("train_0").extra["label_kind"] == "classes"
        assert store.read("train_1").extra["label_kind"] == "binary"
        unlabelled = [store.read(f"unlabelled_{name}") for name in UNLABELLED_NAMES]
        assert not any(case.labelled for case in unlabelled)
        assert [case.patient_id for case in unlabelled] == [
            "coronacases_org_001"] + ["radiopaedia_org_covid-19-pneumonia-10"] * 2
        assert unlabelled[1].extra["scan"] == "radiopaedia_org_covid-19-pneumonia-10_85902_1-dcm"
        assert unlabelled[0].extra["pseudo_label_file"] == (
            f"{TRAIN}/Pseudo-label/GT/{UNLABELLED_NAMES[0]}.png")
    counts = np.bincount(np.concatenate([label.ravel() for label in labels.values()]),
                         minlength=3)
    assert list(summary["label_pixels"].values()) == counts.tolist()
    assert (summary["labelled_cases"], summary["unlabelled_cases"]) == (3, 3)


def test_generic_layout_with_split_name(tmp_path):
    for folder in ("Imgs", "GT", "Edge"):
        (tmp_path / "mine" / folder).mkdir(parents=True)
    label = class_mask(20, 24, 5)
    write_grey(tmp_path / "mine/Imgs/a.png", slice_pixels(20, 24, 5))
    write_palette_mask(tmp_path / "mine/GT/a.png", label)
    import_dataset("semiseg", tmp_path / "mine", tmp_path / "mine.h5", progress=False,
                   split="val")
    with CaseStore(tmp_path / "mine.h5") as store:
        case = store.read("val_a")
        np.testing.assert_array_equal(case.image[0], slice_pixels(20, 24, 5))
        np.testing.assert_array_equal(case.label[0], label)


def test_mask_size_must_match_image(tmp_path):
    make_infnet(tmp_path / "semiseg")
    write_grey(tmp_path / "semiseg" / TEST / "Imgs/6.jpg", slice_pixels(36, 40, 6))
    with pytest.raises(DataError, match=r"6\.png: shape \(36, 41\) does not match image 6\.jpg "
                                        r"shape \(36, 40\)"):
        import_dataset("semiseg", tmp_path / "semiseg", tmp_path / "out.h5", progress=False)
    assert list(tmp_path.glob("*.h5*")) == []


def test_image_without_mask(tmp_path):
    make_infnet(tmp_path / "semiseg")
    (tmp_path / "semiseg" / TRAIN / "Doctor-label/GT/1.png").unlink()
    with pytest.raises(DataError, match=r"1\.jpg: no mask 1\.png in"):
        import_dataset("semiseg", tmp_path / "semiseg", tmp_path / "out.h5", progress=False)


def test_not_a_semiseg_folder(tmp_path):
    with pytest.raises(DataError, match=r"not a COVID-SemiSeg folder"):
        import_dataset("semiseg", tmp_path, tmp_path / "out.h5", progress=False)


def test_real_labelled_pixel_counts_match_the_readme(real_data_dir, tmp_path):
    source = real_data_dir / "COVID-SemiSeg"
    import_dataset("semiseg", source, tmp_path / "semiseg.h5", progress=False,
                   include_unlabelled=False)
    with CaseStore(tmp_path / "semiseg.h5") as store:
        cases = list(store)
    # README table: infection, GGO, consolidation pixels; slices with infection, consolidation
    readme = {"train": (886_214, 560_121, 326_093, 50, 39, (221, 487), (153, 456)),
              "test": (899_000, 636_258, 262_742, 48, 38, (158, 507), (177, 445))}
    for split, (infection, ggo, consolidation, infected, consolidated, heights,
                widths) in readme.items():
        labels = [case.label[0] for case in cases if case.extra["split"] == split]
        assert len(labels) == infected
        assert sum(int((label > 0).sum()) for label in labels) == infection
        assert sum(int((label == 1).sum()) for label in labels) == ggo
        assert sum(int((label == 2).sum()) for label in labels) == consolidation
        assert sum(bool((label == 2).any()) for label in labels) == consolidated
        assert all(case.extra["label_kind"] == "classes" for case in cases
                   if case.extra["split"] == split)
        shapes = np.array([label.shape for label in labels])
        assert (shapes[:, 0].min(), shapes[:, 0].max()) == heights
        assert (shapes[:, 1].min(), shapes[:, 1].max()) == widths
    with np.load(source / "semiseg_doctor_train50.npz") as npz:  # the README's repackaging
        reference = {key: npz[key] for key in ("names", "heights", "widths", "images",
                                               "multiclass")}
    by_id = {case.case_id: case for case in cases}
    for index, name in enumerate(reference["names"]):
        height, width = reference["heights"][index], reference["widths"][index]
        case = by_id[f"train_{name}"]
        np.testing.assert_array_equal(case.image[0], reference["images"][index, :height, :width])
        np.testing.assert_array_equal(case.label[0],
                                      reference["multiclass"][index, :height, :width])


def test_real_unlabelled_slices_and_patients(real_data_dir):
    slices = [case for case, _ in semiseg.read(real_data_dir / "COVID-SemiSeg")
              if case.extra["split"] == "unlabelled"]
    assert len(slices) == 1600 and not any(case.labelled for case in slices)
    assert len({case.extra["scan"] for case in slices}) == 20
    assert len({case.patient_id for case in slices}) == 18  # two Radiopaedia cases, two scans each
    heights, widths = zip(*(case.image.shape[1:] for case in slices))
    assert (min(heights), max(heights), min(widths), max(widths)) == (249, 507, 152, 387)
