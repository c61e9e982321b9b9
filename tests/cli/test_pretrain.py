"""``tfcovid pretrain``: a tiny multi-class pre-training stopped and resumed, and one-line
errors."""

import json

from tfcovid.cli.main import main
from tfcovid.data.phantom import write_phantom

TINY = ["data.image_size=[32, 32]", "pretrain.crop_size=32", "pretrain.rounds=1",
        "pretrain.network_learning_rates=[0.001]", "train.batch_size=2",
        "train.steps_per_epoch=1", "train.run_eagerly=true", "train.validation_fraction=0.34"]


def _arguments(store, workdir, *extra):
    overrides = [argument for override in [f"data.store={store}", *TINY]
                 for argument in ("--set", override)]
    return ["--quiet", "pretrain", "multi_ssinfnet_phantom_tiny_pretrain", *overrides,
            "--workdir", str(workdir), *extra]


def test_pretrain_stops_resumes_and_prints_the_reconstruction_before_after(tmp_path, capsys):
    store = tmp_path / "phantom.h5"
    write_phantom(store, num_cases=3, num_slices=2, size=32, progress=False)
    workdir = tmp_path / "pretrain"
    assert main(_arguments(store, workdir, "--max-epochs", "1")) == 0
    out = capsys.readouterr().out
    assert "epochs          1 of 2" in out and "not finished" in out
    assert not (workdir / "inpainter.keras").exists()
    assert main(_arguments(store, workdir)) == 0
    out = capsys.readouterr().out
    summary = json.loads((workdir / "pretrain.json").read_text())
    assert summary["finished"] and "epochs          2 of 2" in out
    assert f"val rec before  {summary['reconstruction_before']:.4f}" in out
    assert f"val rec after   {summary['reconstruction_after']:.4f}" in out
    assert [r["epoch"] for r in json.loads((workdir / "history.json").read_text())] == [0, 1, 2]


def test_a_segmentation_network_is_a_one_line_error(tmp_path, capsys):
    assert main(["pretrain", "infnet_phantom_tiny", "--workdir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err == ("tfcovid: error: model.name: 'infnet' is not an inpainting network; "
                   "pre-train one of infnet_inpainting, infnet_multiclass_inpainting\n")
