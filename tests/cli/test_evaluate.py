"""``tfcovid evaluate``: the JSON written from a tiny run, and one-line errors."""

import json
import re

import numpy as np
import pytest

from tests.test_evaluation import make_run
from tfcovid.cli.main import main
from tfcovid.metrics import METRIC_NAMES


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("cli_evaluate"))


def test_evaluate_writes_complete_json_and_prints_the_table(run, tmp_path, capsys):
    _, workdir = run
    out = tmp_path / "metrics.json"
    assert main(["--quiet", "evaluate", "--model", str(workdir), "--split", "val",
                 "--weights", "final", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    written = json.loads(out.read_text())
    assert [path.name for path in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left
    settings = written["settings"]
    assert (settings["split"], settings["weights"], settings["num_slices"]) == ("val", "final", 2)
    names = list(METRIC_NAMES) + ["auc", "s_measure", "e_measure", "weighted_f", "mae"]
    assert sorted(written["summary"]) == sorted(names)
    assert len(written["rows"]) == 2
    for row in written["rows"]:
        assert sorted(row) == sorted(["case_id", "slice_index", *names])
    dices = [row["dice"] for row in written["rows"] if row["dice"] is not None]
    dice = written["summary"]["dice"]
    assert dice["n"] == len(dices) and dice["dropped"] == 2 - len(dices)
    if dices:
        assert dice["mean"] == pytest.approx(np.mean(dices))
        assert re.search(rf"^dice +{dice['mean']:.3f} ± ", printed, re.MULTILINE)
    assert "mean_dice" in written["threshold_sweep"] and "mean_dice" in printed


def test_errors_print_one_line_and_exit_2(run, tmp_path, capsys):
    _, workdir = run
    assert main(["evaluate", "--model", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.endswith("missing: no such run folder\n") and err.count("\n") == 1
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text((workdir / "config.yaml").read_text())
    assert main(["evaluate", "--model", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.endswith("model.keras: no such file; the run has not finished training\n")
    assert err.count("\n") == 1
    assert main(["evaluate", "--model", str(workdir), "--data", "x.h5", "--split", "val"]) == 2
    assert capsys.readouterr().err == ("tfcovid: error: --split val: --data evaluates the whole "
                                       "store; leave out --split\n")


def test_choices_match_the_library():
    from tfcovid import evaluation
    from tfcovid.cli import evaluate

    assert (evaluate.SPLITS, evaluate.WEIGHTS) == (evaluation.SPLITS, evaluation.WEIGHTS)
