"""``tfcovid train``: a tiny run end to end, and one-line errors for bad configs."""

import json

import yaml

from tfcovid.cli.main import main
from tfcovid.data.phantom import write_phantom


def test_train_runs_a_tiny_experiment_and_prints_a_summary(tmp_path, capsys):
    store = tmp_path / "phantom.h5"
    write_phantom(store, num_cases=2, num_slices=2, size=64, seed=1, progress=False)
    experiment = tmp_path / "tiny.yaml"
    experiment.write_text(yaml.safe_dump({
        "base": "infnet_phantom_tiny",
        "data": {"store": str(store), "image_size": [32, 64]},
        "train": {"epochs": 1, "batch_size": 2, "steps_per_epoch": 1, "scales": [1.0],
                  "validation_fraction": 0.0, "run_eagerly": True}}))
    workdir = tmp_path / "run"
    assert main(["--quiet", "train", str(experiment), "--set", "optimizer.learning_rate=0.01",
                 "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    history = json.loads((workdir / "history.json").read_text())
    assert [record["epoch"] for record in history] == [1]
    assert f"loss        {history[0]['loss']:.4f} (last epoch)" in out
    assert "val dice    n/a" in out and "best dice   n/a" in out
    assert yaml.safe_load((workdir / "config.yaml").read_text())["optimizer"][
        "learning_rate"] == 0.01
    assert (workdir / "model.keras").exists() and not (workdir / "best.weights.h5").exists()


def test_bad_config_prints_one_line_and_exits_2(tmp_path, capsys):
    assert main(["train", "infnet_semiseg", "--set", "train.epoks=2",
                 "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tfcovid: error: --set train.epoks=2: train.epoks: unknown key; "
                          "known: epochs,")
    assert err.count("\n") == 1
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err.strip().endswith("missing.yaml: no such file")
    assert main(["train", "infnet_semiseg"]) == 2  # neither --workdir nor workdir
    assert capsys.readouterr().err == ("tfcovid: error: workdir: not set; pass --workdir or set "
                                       "workdir in the config\n")
    assert list(tmp_path.iterdir()) == []


def test_networks_of_other_loops_name_their_command(tmp_path, capsys):
    for name, command in (("stichnet_phantom_tiny", "tfcovid stichnet train"),
                          ("ssinfnet_phantom_tiny_pretrain", "tfcovid pretrain")):
        assert main(["train", name, "--workdir", str(tmp_path / name)]) == 2
        assert f"is trained by `{command}`, not by `tfcovid train`" in capsys.readouterr().err
        assert not (tmp_path / name).exists()  # nothing written
