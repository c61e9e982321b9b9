"""Output folders written whole or not at all."""

import pytest

from tfcovid.atomic import folder_replaced


def test_folder_replaces_the_old_one_only_when_complete(tmp_path):
    out = tmp_path / "nested" / "report"
    with folder_replaced(out) as temporary:
        temporary.mkdir()
        (temporary / "a.txt").write_text("first")
    assert (out / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError, match="interrupted"):
        with folder_replaced(out) as temporary:
            temporary.mkdir()
            (temporary / "a.txt").write_text("half")
            raise RuntimeError("interrupted")
    assert (out / "a.txt").read_text() == "first"  # the old folder survives a failed write
    with folder_replaced(out) as temporary:
        temporary.mkdir()
        (temporary / "b.txt").write_text("second")
    assert sorted(path.name for path in out.iterdir()) == ["b.txt"]
    assert sorted(path.name for path in out.parent.iterdir()) == ["report"]  # nothing left over
