"""Experiment configs: resolution order, strict keys and types, dump round trip, shipped YAMLs."""

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from tfcovid import config
from tfcovid.errors import ConfigError
from tfcovid.models.infnet import InfNetConfig
from tfcovid.registry import MODELS

SHIPPED = sorted(config.CONFIG_DIR.glob("*.yaml"))


def write_yaml(path: Path, tree: dict) -> str:
    path.write_text(yaml.safe_dump(tree))
    return str(path)


def test_dataclass_defaults_are_the_reference_recipe():
    experiment = config.Experiment()
    # spec 4.1: Adam 1e-4, clip 0.5, batch 24, rates 0.75/1/1.25
    assert (experiment.optimizer.name, experiment.optimizer.learning_rate) == ("adam", 1e-4)
    assert experiment.optimizer.clip_value == 0.5
    assert experiment.train.batch_size == experiment.data.batch_size == 24
    assert experiment.train.scales == (0.75, 1.0, 1.25)


def test_scale_sizes_match_the_spec_table():
    # spec 4.1: round(352 * rate / 32) * 32 = 256, 352, 448
    assert config.TrainConfig().scale_sizes((352, 352)) == ((256, 256), (352, 352), (448, 448))
    # 96 * 0.75 / 32 = 2.25 -> 64; 64 * 1.25 / 32 = 2.5 -> 2 (Python rounds half to even) -> 64
    assert config.TrainConfig().scale_sizes((96, 64)) == ((64, 64), (96, 64), (128, 64))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.stem)
def test_every_shipped_yaml_loads_by_name_and_validates(path):
    experiment = config.load_experiment(path.stem)
    assert experiment.model.name in MODELS.names()
    raw = yaml.safe_load(path.read_text())
    # every key the file sets reaches the experiment unchanged
    for section in ("data", "optimizer", "train"):
        for key, value in raw.get(section, {}).items():
            resolved = getattr(getattr(experiment, section), key)
            assert (list(resolved) if isinstance(resolved, tuple) else resolved) == value, key
    assert isinstance(experiment.model.model_config(), MODELS.config(experiment.model.name))


def test_semiseg_yaml_is_the_paper_recipe():
    experiment = config.load_experiment("infnet_semiseg")
    assert experiment.model.options["channels"] == 32
    assert experiment.data.image_size == (352, 352)
    assert experiment.train.batch_size == 24
    assert experiment.train.epochs == 99  # the reference's range(1, 100)
    assert experiment.train.scale_sizes(experiment.data.image_size) == (
        (256, 256), (352, 352), (448, 448))


def test_resolution_order_shipped_then_user_then_overrides(tmp_path):
    user = write_yaml(tmp_path / "user.yaml", {
        "base": "infnet_semiseg",
        "train": {"epochs": 7, "batch_size": 4},
        "model": {"channels": 16}})
    experiment = config.load_experiment(user, ["train.epochs=3", "optimizer.learning_rate=1e-3"])
    assert experiment.train.epochs == 3  # --set beats the user file
    assert experiment.train.batch_size == 4  # the user file beats the shipped one
    assert experiment.data.batch_size == 4  # the data pipeline follows train
    assert experiment.optimizer.learning_rate == 1e-3  # "1e-3" is a string to YAML 1.1
    assert experiment.model.options["channels"] == 16
    assert experiment.model.options["backbone"] == "res2net50_v1b_26w_4s"  # from the base
    assert experiment.data.store == "semiseg.h5"  # from the base
    assert experiment.optimizer.schedule == "step"


def test_mapping_values_and_another_network_replace_the_base(tmp_path):
    ablation = config.load_experiment("multi_ssinfnet_semiseg_no_focal")
    assert ablation.loss.terms == {"bce": 1.0}  # not merged with the base's {focal: 1.0}
    assert config.load_experiment("multi_ssinfnet_semiseg").loss.terms == {"focal": 1.0}
    user = write_yaml(tmp_path / "user.yaml", {
        "base": "infnet_phantom_tiny",
        "model": {"name": "infnet_multiclass", "variant": "improved"},
        "pretrain": {"coach": {"latent_dim": 4}}})
    experiment = config.load_experiment(user, ["pretrain.coach={stem_filters: 8}"])
    # the base's Inf-Net options (backbone, channels) do not leak into the U-Net's
    assert experiment.model.options["variant"] == "improved"
    assert "backbone" not in experiment.model.options
    assert experiment.pretrain.coach == {"stem_filters": 8}
    assert experiment.data.store == "phantom_tiny.h5"  # other sections still merge


def test_pretrain_section_round_trips_and_checks_its_values(tmp_path):
    experiment = config.load_experiment("ssinfnet_semiseg_pretrain", [
        "pretrain.rounds=11", "pretrain.order=coach_first", "pretrain.later_learning_rate=1e-5"])
    assert experiment.pretrain.rounds == 11 and experiment.pretrain.later_learning_rate == 1e-5
    assert experiment.pretrain.network_learning_rates == (0.1, 0.01, 0.001, 0.0001)
    config.dump(experiment, tmp_path / "config.yaml")
    assert config.load_experiment(str(tmp_path / "config.yaml")) == experiment
    with pytest.raises(ConfigError, match=r"--set pretrain\.order=sideways: pretrain\.order"):
        config.load_experiment("ssinfnet_semiseg_pretrain", ["pretrain.order=sideways"])
    with pytest.raises(ConfigError, match="crop_size"):
        config.load_experiment("ssinfnet_semiseg_pretrain", ["pretrain.crop_size=100"])


def test_user_yaml_without_base_starts_from_defaults(tmp_path):
    tiny = dataclasses.asdict(InfNetConfig.tiny())
    user = write_yaml(tmp_path / "user.yaml", {"model": {"name": "infnet", **tiny}})
    experiment = config.load_experiment(user, ["train.scales=[1, 2]"])
    assert experiment.train == config.TrainConfig(scales=(1.0, 2.0))
    assert experiment.model.model_config() == InfNetConfig.tiny()


def test_unknown_key_names_file_and_dotted_key(tmp_path):
    user = write_yaml(tmp_path / "user.yaml", {"train": {"epoks": 2}})
    with pytest.raises(ConfigError, match=r"^.*user\.yaml: train\.epoks: unknown key; known: "
                                          r"epochs, batch_size"):
        config.load_experiment(user)
    with pytest.raises(ConfigError, match=r"^--set optimizer\.lookahed=true: "
                                          r"optimizer\.lookahed: unknown key"):
        config.load_experiment("infnet_semiseg", ["optimizer.lookahed=true"])
    with pytest.raises(ConfigError, match=r"user\.yaml: trian: unknown key"):
        config.load_experiment(write_yaml(tmp_path / "user.yaml", {"trian": {}}))


def test_unknown_model_option_is_checked_against_the_registry_dataclass(tmp_path):
    user = write_yaml(tmp_path / "user.yaml", {"model": {"name": "infnet", "chanels": 8}})
    with pytest.raises(ConfigError, match=r"user\.yaml: model\.chanels: unknown key; known: "
                                          r"backbone,"):
        config.load_experiment(user)
    with pytest.raises(ConfigError, match=r"--set model\.name=infnt: .*unknown model 'infnt'; "
                                          r"known: .*infnet"):
        config.load_experiment("infnet_semiseg", ["model.name=infnt"])


@pytest.mark.parametrize("override, message", [
    ("train.epochs=two", r"train\.epochs: expected an int, got 'two'"),
    ("train.epochs=2.5", r"train\.epochs: expected an int, got 2\.5"),
    ("train.jit_compile=1", r"train\.jit_compile: expected true or false, got 1"),
    ("train.precision=float16", r"train\.precision: expected one of 'float32', "),
    ("train.scales=0.5", r"train\.scales: expected a list of a number, got 0\.5"),
    ("data.image_size=[64]", r"data\.image_size: expected a list of 2 values, got \[64\]"),
    ("model.reverse_attention_channels=[1, x, 2]",
     r"model\.reverse_attention_channels: expected an int, got 'x'"),
    ("optimizer.clip_value=big", r"optimizer\.clip_value: expected a number, got 'big'"),
])
def test_wrong_types_name_the_override_and_key(override, message):
    with pytest.raises(ConfigError, match=rf"^--set {re.escape(override)}: {message}"):
        config.load_experiment("infnet_semiseg", [override])


@pytest.mark.parametrize("override, key", [
    ("train.epochs=0", "train.epochs"),
    ("train.validation_fraction=1.5", "train.validation_fraction"),
    ("optimizer.momentum=0.9", "optimizer.momentum"),  # adam has no momentum
    ("data.window_width_hu=-1", "data.window_width_hu"),  # DataConfig's own check
    ("data.augmentation.crop_fraction=2", "data.augmentation.crop_fraction"),
])
def test_out_of_range_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=rf"^--set {re.escape(override)}: {re.escape(key)}: "):
        config.load_experiment("infnet_semiseg", [override])


def test_train_owned_data_keys_and_bad_inputs_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.batch_size: set by train\.batch_size"):
        config.load_experiment("infnet_semiseg", ["data.batch_size=2"])
    with pytest.raises(ConfigError, match=r"^experiment: unknown experiment 'nope'; known: "
                                          r"fcn8_semiseg, infnet_multiclass_phantom_tiny, "):
        config.load_experiment("nope")
    with pytest.raises(ConfigError, match=r"missing\.yaml: no such file"):
        config.load_experiment(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"^--set train\.epochs: expected dotted\.key=value"):
        config.load_experiment("infnet_semiseg", ["train.epochs"])
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        config.load_experiment(str(tmp_path / "bad.yaml"))


def test_dump_round_trips(tmp_path):
    experiment = config.load_experiment("infnet_phantom_tiny", [
        "data.augmentation={cutout_fraction: 0.25}", "loss.weights={edge: 2.0}",
        "workdir=runs/x"])
    config.dump(experiment, tmp_path / "config.yaml")
    assert config.load_experiment(str(tmp_path / "config.yaml")) == experiment
    assert experiment.data.augmentation.cutout_fraction == 0.25
    assert list(tmp_path.iterdir()) == [tmp_path / "config.yaml"]  # no temporary file left
