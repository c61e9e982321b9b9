"""``tfcovid predict``: one scan, a batch folder with a corrupt file, one-line errors."""

import json

import keras
import pytest

from tests.test_export import make_run
from tests.test_predict import write_phantom_nifti
from tfcovid import predict
from tfcovid.cli import predict as cli_predict
from tfcovid.cli.main import main
from tfcovid.models.infnet import InfNetConfig
from tfcovid.severity import phenotypes


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    keras.utils.set_random_seed(4)
    return make_run(tmp_path_factory.mktemp("cli_predict") / "run", "infnet", InfNetConfig.tiny())


def test_one_scan_is_written_into_the_output_folder(run_dir, tmp_path, capsys):
    write_phantom_nifti(tmp_path / "patient_1.nii.gz")
    out = tmp_path / "report"
    assert main(["--quiet", "predict", str(tmp_path / "patient_1.nii.gz"), "--model",
                 str(run_dir), "--out", str(out), "--weights", "final"]) == 0
    summary = json.loads((out / "severity.json").read_text())
    assert summary["model"]["weights"] == "final"
    assert summary["settings"]["precision"] == "float32"  # as saved
    case = summary["case"]
    assert capsys.readouterr().out == (
        f"{out}: severity {case['severity_class']} ({case['severity_name']}), infection "
        f"{100 * case['ratios']['infection']:.1f}% of lung, CT-SS "
        f"{summary['ct_severity_score']['total']}/24\n")


def test_precision_option_rebuilds_the_network(run_dir, tmp_path):
    write_phantom_nifti(tmp_path / "patient_1.nii.gz")
    out = tmp_path / "report"
    assert main(["--quiet", "predict", str(tmp_path / "patient_1.nii.gz"), "--model",
                 str(run_dir), "--out", str(out), "--weights", "final",
                 "--precision", "mixed_bfloat16"]) == 0
    assert json.loads((out / "severity.json").read_text())["settings"]["precision"] == \
        "mixed_bfloat16"


def test_batches_at_once_reach_both_networks_and_keep_outputs(run_dir, tmp_path, monkeypatch):
    scan = str(tmp_path / "patient_1.nii.gz")
    write_phantom_nifti(scan)
    used = []
    real_predict_scan = predict.predict_scan

    def spy(scan_path, predictor, out_dir, **options):
        lung_run = options["lung_run"]
        used.append((predictor.batches_at_once, lung_run and lung_run.batches_at_once))
        return real_predict_scan(scan_path, predictor, out_dir, **options)

    monkeypatch.setattr(predict, "predict_scan", spy)
    reports = []
    for at_once in ("1", "2"):
        out = tmp_path / f"report_{at_once}"
        assert main(["--quiet", "predict", scan, "--model", str(run_dir), "--out", str(out),
                     "--batch-size", "2", "--batches-at-once", at_once]) == 0
        reports.append(json.loads((out / "severity.json").read_text()))
    assert reports[0] == reports[1]
    # the lung model gets the setting too (this untrained run finds no lung: exit 2)
    assert main(["--quiet", "predict", scan, "--model", str(run_dir), "--lung-model",
                 str(run_dir), "--out", str(tmp_path / "lungs"), "--batches-at-once", "1"]) == 2
    assert used == [(1, None), (2, None), (1, 1)]
    assert cli_predict.BATCHES_AT_ONCE == predict.BATCHES_AT_ONCE  # spelled out there


def test_batch_skips_a_corrupt_scan_and_exits_2(run_dir, tmp_path, capsys):
    scans = tmp_path / "scans"
    scans.mkdir()
    write_phantom_nifti(scans / "a.nii.gz", case_index=1)
    write_phantom_nifti(scans / "c.nii.gz", case_index=2)
    (scans / "b.nii.gz").write_bytes((scans / "a.nii.gz").read_bytes()[:200])  # truncated
    out = tmp_path / "out"
    assert main(["--quiet", "predict", str(scans), "--model", str(run_dir), "--out",
                 str(out)]) == 2
    captured = capsys.readouterr()
    assert sorted(path.name for path in out.iterdir()) == ["a", "c", "phenotypes.csv"]
    assert all((out / name / "report.html").is_file() for name in ("a", "c"))
    combined = phenotypes.read_csv(out / "phenotypes.csv")
    assert combined == [row for name in ("a", "c")
                        for row in phenotypes.read_csv(out / name / "phenotypes.csv")]
    assert [row["scan"] for row in combined] == ["a", "c"]
    printed = captured.out.splitlines()
    assert [line.split(": ")[0] for line in printed] == [str(out / "a"), str(out / "c")]
    errors = captured.err.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"tfcovid: error: {scans / 'b.nii.gz'}: not a readable NIfTI")
    assert errors[1] == f"tfcovid: error: 1 of 3 scans failed: {scans / 'b.nii.gz'}"


def test_missing_scan_and_existing_output_are_one_line_errors(run_dir, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "missing.nii.gz"), "--model", str(run_dir),
                 "--out", str(tmp_path / "out")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors == [f"tfcovid: error: {tmp_path / 'missing.nii.gz'}: no such file or folder",
                      f"tfcovid: error: 1 of 1 scans failed: {tmp_path / 'missing.nii.gz'}"]
    write_phantom_nifti(tmp_path / "scan.nii.gz")
    (tmp_path / "out").mkdir()
    assert main(["--quiet", "predict", str(tmp_path / "scan.nii.gz"), "--model", str(run_dir),
                 "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"tfcovid: error: {tmp_path / 'out'}: already exists; pass --overwrite to replace it")
    assert main(["predict", str(tmp_path / "scan.nii.gz"), "--model", str(run_dir), "--out",
                 str(tmp_path / "other"), "--batches-at-once", "0"]) == 2
    assert capsys.readouterr().err == "tfcovid: error: --batches-at-once 0: needs 1 or more\n"
