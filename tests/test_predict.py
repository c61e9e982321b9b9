"""`tfcovid.predict`: outputs against `predict_hu`, `segment_lungs`, `infection_ratios` and the
readers recomputed here; geometry, atomic writing, and one-line errors for bad scans."""

import base64
import gzip
import io
import json

import keras
import nibabel
import numpy as np
import pytest
from PIL import Image

from tests.data.ct_files import write_ct_dicom, write_grey
from tests.test_export import make_run
from tfcovid import export, predict, report
from tfcovid.data import phantom
from tfcovid.data.readers import dicom, nifti
from tfcovid.errors import DataError
from tfcovid.models.infnet import InfNetConfig
from tfcovid.models.infnet.infnet_multiclass import InfNetMultiClassConfig
from tfcovid.severity import classes, ctss, lung, phenotypes, radiomics, ratio, thresholds

SHAPE = (6, 64, 72)  # (slices, rows, columns) of the phantom scans
# stored x, y, z point to patient right, anterior, superior, z reversed: slices stored
# superior -> inferior, so the reader's flips are undone on writing
STORED_AFFINE = np.array([[1.5, 0, 0, -50], [0, 1.25, 0, 20], [0, 0, -5.0, 80], [0, 0, 0, 1]])


def phantom_volume(case_index: int = 1) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A phantom in the readers' orientation (slices inferior -> superior) and its spacing."""
    case = phantom.make_phantom_case(case_index, SHAPE[0], SHAPE[1], SHAPE[2])
    return case.image[::-1], case.spacing_mm


def write_phantom_nifti(path, case_index: int = 1, affine: np.ndarray = STORED_AFFINE) -> None:
    """The phantom as a NIfTI file that the reader brings back as `phantom_volume`."""
    volume, _ = phantom_volume(case_index)
    stored = predict.to_stored_order(volume, affine)
    nibabel.save(nibabel.Nifti1Image(np.ascontiguousarray(stored), affine), path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Untrained run folders: single-class Inf-Net, multi-class Inf-Net with zero priors."""
    root = tmp_path_factory.mktemp("predict_runs")
    keras.utils.set_random_seed(3)
    return {"binary": make_run(root / "binary", "infnet", InfNetConfig.tiny()),
            "multiclass": make_run(root / "multiclass", "infnet_multiclass",
                                   InfNetMultiClassConfig.tiny(prior="zeros"), 6)}


@pytest.fixture(scope="module")
def predictors(runs):
    return {kind: predict.load_predictor(path) for kind, path in runs.items()}


@pytest.fixture(scope="module")
def scan_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("scans") / "patient_1.nii.gz"
    write_phantom_nifti(path)
    return path


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_outputs_agree_with_the_computation_redone_here(kind, predictors, scan_path, tmp_path):
    out = tmp_path / "out"
    summary = predict.predict_scan(scan_path, predictors[kind], out, batch_size=4,
                                   progress=False)
    assert sorted(path.name for path in out.iterdir()) == sorted(summary["files"])
    assert [path.name for path in tmp_path.iterdir()] == ["out"]  # no temporary folder left

    volume, spacing = nifti.read_nifti_hu(scan_path)
    outputs = export.predict_hu(predictors[kind].run, volume)
    expected_labels = outputs["probabilities"].argmax(axis=-1)
    expected_lung = lung.segment_lungs(volume, spacing)
    for name, expected in (("labels.nii.gz", expected_labels), ("lung.nii.gz", expected_lung)):
        written = nibabel.load(out / name)
        np.testing.assert_array_equal(written.affine, nibabel.load(scan_path).affine)
        assert written.shape == nibabel.load(scan_path).shape
        assert written.get_data_dtype() == np.uint8
        values, _ = nifti.read_nifti(out / name)  # the reader's flips, not predict's
        np.testing.assert_array_equal(values, expected)

    probabilities = (outputs["probabilities"] if kind == "multiclass"
                     else outputs["probabilities"][..., 1])
    ratios = ratio.infection_ratios(np.clip(probabilities, 0, 1), expected_lung)
    stored = json.loads((out / "severity.json").read_text())
    assert stored == summary
    for index, name in enumerate(ratios.classes):
        assert stored["case"]["ratios"][name] == pytest.approx(ratios.per_case[index], abs=1e-6)
        assert stored["case"]["lungs"]["left"][name] == pytest.approx(
            ratios.per_lung[1, index], abs=1e-6)
        per_slice = [entry["ratios"][name] for entry in stored["slices"]]
        np.testing.assert_allclose(np.array(per_slice, dtype=float), ratios.per_slice[:, index],
                                   atol=1e-6)
    expected_names = ["infection"] + (["ggo", "consolidation"] if kind == "multiclass" else [])
    assert list(stored["case"]["ratios"]) == expected_names
    assert stored["case"]["severity_class"] == classes.severity_class(ratios.per_case[0])
    score = ctss.ct_severity_score(expected_labels.astype(np.uint8), expected_lung)
    assert stored["ct_severity_score"]["total"] == score.total
    assert stored["case"]["lung_voxels"] == {
        "right": int(np.count_nonzero(expected_lung == 1)),
        "left": int(np.count_nonzero(expected_lung == 2))}
    assert stored["scan"]["shape"] == list(SHAPE) and stored["model"]["family"] == kind

    page = (out / "report.html").read_text()
    assert "<svg" in page and page.count("<polyline") >= len(expected_names)
    assert f"Severity class <b>{stored['case']['severity_class']} (" in page
    encoded = page.split('src="data:image/png;base64,')[1].split('"')[0]
    montage = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))
    indices = report.montage_slices(expected_labels, expected_lung)
    window = (-500.0 - 600.0, -500.0 + 600.0)  # the runs' level -500, width 1200 HU
    np.testing.assert_array_equal(montage, report.slice_montage(volume, expected_labels,
                                                                indices, window))


def test_batches_at_once_give_the_outputs_of_one_at_a_time_with_one_trace(runs, scan_path):
    volume, _ = nifti.read_nifti_hu(scan_path)
    one = predict.load_predictor(runs["multiclass"], batches_at_once=1)
    expected = list(one.predict_batches(volume, 1))
    three = predict.load_predictor(runs["multiclass"], batches_at_once=3)
    got = list(three.predict_batches(volume, 1))  # the first three calls trace at once
    assert [start for start, _ in got] == [start for start, _ in expected] == list(range(6))
    for (_, want), (_, have) in zip(expected, got):
        assert sorted(have) == sorted(want)
        for key in want:
            np.testing.assert_array_equal(have[key], want[key])
    assert three.traced_predict.experimental_get_tracing_count() == 1
    batches = list(three.predict_batches(volume, 4))
    assert [(start, len(outputs["label"])) for start, outputs in batches] == [(0, 4), (4, 2)]
    with pytest.raises(ValueError, match="batches_at_once=0"):
        predict.load_predictor(runs["binary"], batches_at_once=0)


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_bfloat16_predictor_computes_in_bfloat16_with_the_same_weights(kind, runs, predictors,
                                                                       scan_path, tmp_path):
    fast = predict.load_predictor(runs[kind], precision="mixed_bfloat16")
    assert fast.precision == "mixed_bfloat16" and predictors[kind].precision == "float32"
    assert predict.load_predictor(runs[kind], precision="float32").precision == "float32"
    assert fast.run.network.compute_dtype == "bfloat16"
    for got, want in zip(fast.run.network.weights, predictors[kind].run.network.weights):
        assert got.dtype == "float32"
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    volume, _ = nifti.read_nifti_hu(scan_path)
    full = predictors[kind].predict_hu(volume)["probabilities"]
    half = fast.predict_hu(volume)["probabilities"]
    assert half.dtype == np.float32 and not np.array_equal(half, full)
    np.testing.assert_allclose(half, full, atol=0.05)  # bfloat16 keeps 8 significant bits
    summary = predict.predict_scan(scan_path, fast, tmp_path / "out", progress=False,
                                   precision="mixed_bfloat16")
    assert summary["settings"]["precision"] == "mixed_bfloat16"
    with pytest.raises(ValueError, match=r"precision must be the predictor's \('mixed_bfloat16'"):
        predict.predict_scan(scan_path, fast, tmp_path / "again", progress=False,
                             precision="float32")
    with pytest.raises(ValueError, match="precision must be one of"):
        predict.load_predictor(runs[kind], precision="float64")


def test_phenotype_row_and_fitted_thresholds(runs, predictors, scan_path, tmp_path):
    run_dir = runs["binary"]
    thresholds.save_thresholds(run_dir, (0.0, 0.0), {"store": "phantom.h5"})  # all class 2
    try:
        summary = predict.predict_scan(scan_path, predictors["binary"], tmp_path / "out",
                                       progress=False)
    finally:
        (run_dir / thresholds.THRESHOLDS_FILE).unlink()
    assert summary["case"]["severity_class"] == 2
    assert all(entry["severity_class"] in (None, 2) for entry in summary["slices"])
    assert summary["settings"]["thresholds"] == [0.0, 0.0]
    assert summary["settings"]["thresholds_source"] == "fitted"
    assert summary["settings"]["thresholds_file"] == str(run_dir / thresholds.THRESHOLDS_FILE)

    volume, spacing = nifti.read_nifti_hu(scan_path)
    labels, _ = nifti.read_nifti(tmp_path / "out" / "labels.nii.gz")
    lungs, _ = nifti.read_nifti(tmp_path / "out" / "lung.nii.gz")
    expected = phenotypes.infection_phenotypes(volume, labels, lungs, spacing)
    [row] = phenotypes.read_csv(tmp_path / "out" / "phenotypes.csv")
    assert row["scan"] == "patient_1" and row["severity_name"] == "critical"
    assert float(row["infected_fraction"]) == summary["case"]["ratios"]["infection"]
    assert row["phenotype_status"] == expected["phenotype_status"]
    for name in radiomics.FEATURE_NAMES:
        assert (float(row[name]) if row[name] else np.nan) == pytest.approx(
            expected[name], nan_ok=True), name


def test_lung_run_replaces_the_classical_segmenter(runs, predictors, scan_path, tmp_path):
    # the untrained single-class network stands in for a lung run (it calls 47% of voxels
    # foreground here): the written lungs are its labels split into sides
    summary = predict.predict_scan(scan_path, predictors["multiclass"], tmp_path / "out",
                                   progress=False, lung_run=predictors["binary"])
    assert summary["settings"]["lung_model"] == str(runs["binary"])
    volume, spacing = nifti.read_nifti_hu(scan_path)
    expected = lung.label_lungs(export.predict_hu(predictors["binary"].run, volume)["label"] > 0,
                                spacing)
    assert expected.any()
    written, _ = nifti.read_nifti(tmp_path / "out" / "lung.nii.gz")
    np.testing.assert_array_equal(written, expected)


def test_dicom_series_gets_an_affine_from_its_spacing(predictors, tmp_path):
    volume, _ = phantom_volume(2)
    series = tmp_path / "series"
    series.mkdir()
    for index in range(volume.shape[0]):  # written in shuffled order: the reader sorts by z
        position = (index * 7) % volume.shape[0]
        write_ct_dicom(series / f"{index:02d}.dcm", volume[position], z_mm=3.0 * position,
                       series_uid="1.2.3", pixel_spacing=(0.9, 1.1))
    summary = predict.predict_scan(series, predictors["binary"], tmp_path / "out",
                                   progress=False)
    written = nibabel.load(tmp_path / "out" / "labels.nii.gz")
    # columns 1.1 mm to the patient's left, rows 0.9 mm posterior, slices 3 mm superior (RAS+)
    np.testing.assert_allclose(written.affine, np.diag([-1.1, -0.9, 3.0, 1.0]))
    read, spacing, _ = dicom.read_dicom_series(series)
    values, _ = nifti.read_nifti(tmp_path / "out" / "labels.nii.gz")
    np.testing.assert_array_equal(values, export.predict_hu(predictors["binary"].run, read)[
        "probabilities"].argmax(axis=-1))
    assert summary["scan"]["kind"] == "dicom" and summary["scan"]["spacing_mm"] == [3.0, 0.9, 1.1]


def test_png_slices_are_mapped_through_the_run_window(predictors, tmp_path):
    volume, _ = phantom_volume(2)
    grey = np.rint(np.clip((volume + 1100.0) / 1200.0, 0, 1) * 255).astype(np.uint8)
    folder = tmp_path / "slices"
    folder.mkdir()
    for index, image in enumerate(grey):
        write_grey(folder / f"slice_{index:02d}.png", image)
    summary = predict.predict_scan(folder, predictors["binary"], tmp_path / "out",
                                   progress=False)
    hounsfield = np.maximum(np.round(-1100.0 + grey / 255.0 * 1200.0), -1024)  # level - w/2
    values, _ = nifti.read_nifti(tmp_path / "out" / "labels.nii.gz")
    np.testing.assert_array_equal(values, export.predict_hu(predictors["binary"].run, hounsfield)[
        "probabilities"].argmax(axis=-1))
    assert summary["scan"]["kind"] == "images"
    assert summary["scan"]["spacing_mm"] == [5.0, 360 / 72, 360 / 72]  # field of view / columns


def test_a_failure_midway_leaves_no_output_folder(predictors, scan_path, tmp_path,
                                                  monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "render_report", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        predict.predict_scan(scan_path, predictors["binary"], tmp_path / "out", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_unless_overwrite(predictors, scan_path, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(DataError, match=r"out: already exists; pass --overwrite"):
        predict.predict_scan(scan_path, predictors["binary"], out, progress=False)
    predict.predict_scan(scan_path, predictors["binary"], out, overwrite=True, progress=False)
    assert not (out / "old.txt").exists() and (out / "report.html").is_file()
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


def _truncated_nifti(path, source):
    data = gzip.decompress(source.read_bytes())
    path.write_bytes(gzip.compress(data)[: len(data) // 3])


@pytest.mark.parametrize("case, message", [
    ("missing", r"missing\.nii\.gz: no such file or folder$"),
    ("truncated", r"truncated\.nii\.gz: not a readable NIfTI file"),
    ("not_hu", r"not_hu\.nii\.gz: not a CT in Hounsfield units"),
    ("four_d", r"four_d\.nii\.gz: expected 3-D"),
    ("no_lung", r"no_lung\.nii\.gz: no lung found"),
    ("photo", r"photo[/\\]0\.png: colour image"),
    ("notes", r"notes\.txt: not a NIfTI file"),
])
def test_bad_scans_give_one_line_errors(case, message, predictors, scan_path, tmp_path):
    path = tmp_path / f"{case}.nii.gz"
    if case == "truncated":
        _truncated_nifti(path, scan_path)
    elif case == "not_hu":  # an 8-bit picture saved as NIfTI: no air near -1000 HU
        values = np.random.default_rng(0).integers(0, 256, (72, 64, 6)).astype(np.uint8)
        nibabel.save(nibabel.Nifti1Image(values, np.eye(4)), path)
    elif case == "four_d":
        nibabel.save(nibabel.Nifti1Image(np.zeros((8, 8, 4, 3), np.int16), np.eye(4)), path)
    elif case == "no_lung":  # air around a body of soft tissue
        values = np.full((72, 64, 6), -1000, np.int16)
        values[8:64, 8:56] = 40
        nibabel.save(nibabel.Nifti1Image(values, np.eye(4)), path)
    elif case == "photo":
        path = tmp_path / "photo"
        path.mkdir()
        colours = np.random.default_rng(1).integers(0, 256, (32, 40, 3)).astype(np.uint8)
        Image.fromarray(colours).save(path / "0.png")
    elif case == "notes":
        path = tmp_path / "notes.txt"
        path.write_text("not a scan")
    with pytest.raises(DataError, match=message) as raised:
        predict.predict_scan(path, predictors["binary"], tmp_path / "out", progress=False)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_find_scans_lists_files_and_series_folders(tmp_path):
    (tmp_path / "b.nii.gz").write_bytes(b"")
    (tmp_path / "a.nii").write_bytes(b"")
    (tmp_path / "series").mkdir()
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden").mkdir()
    found = predict.find_scans(tmp_path)
    assert [path.name for path in found] == ["a.nii", "b.nii.gz", "series"]
    assert predict.find_scans(tmp_path / "a.nii") == [tmp_path / "a.nii"]
    assert predict.scan_name(tmp_path / "b.nii.gz") == "b"
    with pytest.raises(DataError, match=r"nowhere: no such file or folder"):
        predict.find_scans(tmp_path / "nowhere")
