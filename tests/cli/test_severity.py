"""``tfcovid severity fit|evaluate``: printed scores, the thresholds file, one-line errors."""

import json

from tests.test_severity_evaluation import run_dir, stores  # noqa: F401  (fixtures)
from tfcovid.cli.main import main
from tfcovid.severity import thresholds


def test_fit_then_evaluate_prints_and_writes_scores(run_dir, stores, tmp_path,  # noqa: F811
                                                    capsys):
    assert main(["--quiet", "severity", "fit", "--model", str(run_dir), "--cases",
                 "phantom_000", "phantom_001", "phantom_002"]) == 0
    fitted = json.loads((run_dir / thresholds.THRESHOLDS_FILE).read_text())
    low, high = fitted["thresholds"]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"{run_dir / thresholds.THRESHOLDS_FILE}: thresholds ({low:.4g}, "
                      f"{high:.4g}) fitted on the chosen cases, 3 cases of {stores['lungs']} "
                      f"(lungs: 3 from the store)")
    assert out[1].startswith(f"micro F1 {fitted['fit']['scores']['f1_micro']:.3f} on these")

    report = tmp_path / "severity.json"
    assert main(["--quiet", "severity", "evaluate", "--model", str(run_dir), "--data",
                 str(stores["lungs"]), "--cases", "test", "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    scores = result["scores"]
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f"fitted thresholds ({low:.4g}, {high:.4g}) from "
                           f"{run_dir / thresholds.THRESHOLDS_FILE}")
    assert out[1].startswith(f"micro F1 {scores['f1_micro']:.3f}  precision "
                             f"{scores['precision_micro']:.3f}")
    assert out[3].split() == ["mild", "severe", "critical"]
    for line, row in zip(out[4:7], scores["confusion_matrix"]):
        assert [int(value) for value in line.split()[1:]] == row
    assert len(result["rows"]) == scores["cases"]
    (run_dir / thresholds.THRESHOLDS_FILE).unlink()


def test_store_without_severity_labels_is_a_one_line_error(run_dir, stores,  # noqa: F811
                                                           capsys):
    assert main(["severity", "evaluate", "--model", str(run_dir), "--data",
                 str(stores["no_severity"]), "--cases", "all"]) == 2
    assert capsys.readouterr().err == (
        f"tfcovid: error: {stores['no_severity']}: no case with a severity label among the "
        f"chosen cases; severity needs case labels 0/1/2 (e.g. an iCTCF or phantom store)\n")
    assert main(["severity", "fit", "--model", str(run_dir), "--batch-size", "0"]) == 2
    assert capsys.readouterr().err == "tfcovid: error: --batch-size 0: needs 1 or more\n"


def test_lung_store_writes_lung_masks_as_labels(stores, tmp_path, capsys):  # noqa: F811
    target = tmp_path / "lung.h5"
    assert main(["severity", "lung-store", str(stores["lungs"]), str(target)]) == 0
    assert capsys.readouterr().out == f"{target}: 6 cases with their lung masks as labels\n"
    assert main(["severity", "lung-store", str(stores["no_lungs"]), str(target),
                 "--overwrite"]) == 2
    assert capsys.readouterr().err.startswith(
        f"tfcovid: error: {stores['no_lungs']}: no case has a lung mask")
