"""Every script in examples/ runs to the end and prints what it promises."""

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.py"))
PROMISED_OUTPUT = {
    "data_tour.py": ("stitch(tile(x)) == x: True", "dice ", "weighted_f ", "-> 0.50"),
}


def test_every_example_has_promised_output():
    assert {script.name for script in EXAMPLES} == set(PROMISED_OUTPUT)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(script, tmp_path):
    result = subprocess.run([sys.executable, str(script), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    for text in PROMISED_OUTPUT[script.name]:
        assert text in result.stdout
