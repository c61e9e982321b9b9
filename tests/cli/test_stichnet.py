"""``tfcovid stichnet train`` and ``tfcovid stichnet styles``."""

import numpy as np
import pytest
from PIL import Image

from tfcovid.cli.main import main
from tfcovid.data.phantom import write_phantom


def test_styles_needs_one_image_source(tmp_path, capsys):
    code = main(["stichnet", "styles", "--model", str(tmp_path), "--out", "grid.png"])
    assert code == 2
    assert "give either --image FILE.png or --store FILE.h5" in capsys.readouterr().err


@pytest.mark.slow
def test_train_then_styles_grid(tmp_path, capsys):
    store = tmp_path / "phantom.h5"
    write_phantom(store, num_cases=4, num_slices=2, size=64, seed=1, progress=False,
                  unlabelled_cases=1)
    workdir = tmp_path / "run"
    assert main(["--quiet", "stichnet", "train", "stichnet_phantom_tiny", "--workdir",
                 str(workdir), "--set", f"data.store={store}", "--set", "train.epochs=1",
                 "--set", "train.steps_per_epoch=1", "--set", "train.run_eagerly=true",
                 "--set", "stichnet.uncertainty_samples=2"]) == 0
    assert "best dice" in capsys.readouterr().out
    grid = tmp_path / "grid.png"
    assert main(["--quiet", "stichnet", "styles", "--model", str(workdir), "--store",
                 str(store), "--case", "phantom_000", "--slice", "1", "--out", str(grid),
                 "--zoom", "2"]) == 0
    pixels = np.asarray(Image.open(grid))
    # 7 panels (input, labels, uncertainty, b, h, g, c) of 64 px x 2, 6 gaps of 4 px
    assert pixels.shape == (128, 7 * 128 + 6 * 4, 3)
    assert main(["--quiet", "stichnet", "styles", "--model", str(workdir), "--store",
                 str(store), "--case", "nope", "--out", str(grid)]) == 2
    assert "no case 'nope'" in capsys.readouterr().err
