"""``tfcovid bench --cost-table``: the table's arithmetic and its printout."""

import json
import math

import pytest

from tfcovid.cli.main import main

ROWS = ("FCN8", "Multi SInfNet", "Multi SSInfNet", "Multi SSInfNet pre-training",
        "Multi SSInfNet total")


@pytest.mark.slow
def test_cost_table_is_relative_to_multi_sinfnet(tmp_path, capsys):
    path = tmp_path / "cost.json"
    assert main(["bench", "--cost-table", "--tiny", "--size", "32", "--batch", "2",
                 "--images", "5", "--repeat", "1", "--warmup", "1", "--json", str(path)]) == 0
    table = json.loads(path.read_text())
    assert table["steps_per_epoch"] == math.ceil(5 / 2)
    seconds, relative = table["seconds_per_epoch"], table["relative"]
    assert tuple(seconds) == ROWS and min(seconds.values()) > 0
    assert seconds["Multi SSInfNet total"] == pytest.approx(
        seconds["Multi SSInfNet"] + seconds["Multi SSInfNet pre-training"])
    for name in ROWS:
        assert relative[name] == pytest.approx(seconds[name] / seconds["Multi SInfNet"])
    printed = capsys.readouterr().out
    assert f"{'FCN8':30s} {seconds['FCN8']:9.2f} {relative['FCN8']:9.3f}" in printed


def test_cost_table_refuses_bad_values(capsys):
    assert main(["bench", "--cost-table", "--images", "0"]) == 2
    assert "--cost-table: needs --images" in capsys.readouterr().err
