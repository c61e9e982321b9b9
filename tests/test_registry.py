"""Registry: registration, building from configs and keyword arguments, errors."""

import dataclasses

import pytest

from tfcovid.errors import ConfigError
from tfcovid.registry import BACKBONES, MODELS, Registry


@dataclasses.dataclass(frozen=True)
class BoxConfig:
    height: int = 2
    width: int = 3


def make_registry():
    boxes = Registry("box", key="box.name")

    @boxes.register("area", config=BoxConfig)
    def build_area(cfg):
        return cfg.height * cfg.width

    @boxes.register("perimeter")
    def build_perimeter(height=1, width=1):
        return 2 * (height + width)

    return boxes


def test_build_from_defaults_instance_mapping_and_overrides():
    boxes = make_registry()
    assert boxes.names() == ("area", "perimeter")
    assert boxes.config("area") is BoxConfig and boxes.config("perimeter") is None
    assert boxes.build("area") == 2 * 3
    assert boxes.build("area", BoxConfig(height=4)) == 4 * 3
    assert boxes.build("area", {"width": 5}) == 2 * 5
    assert boxes.build("area", BoxConfig(height=4), width=7) == 4 * 7
    assert boxes.build("perimeter", height=2, width=5) == 2 * (2 + 5)


def test_registering_a_name_twice_is_an_error():
    boxes = make_registry()
    with pytest.raises(ValueError, match=r"box 'area' is already registered by .*build_area"):
        boxes.register("area", config=BoxConfig)(lambda cfg: 0)
    assert boxes.build("area") == 6  # the first builder is kept


def test_unknown_name_lists_the_known_ones():
    message = r"^box\.name: unknown box 'aera'; known: area, perimeter$"
    with pytest.raises(ConfigError, match=message):
        make_registry().build("aera")


def test_unknown_option_lists_the_config_fields():
    message = r"box 'area': unknown option 'depth'; known: height, width"
    with pytest.raises(ConfigError, match=message):
        make_registry().build("area", depth=3)


def test_config_must_be_a_dataclass_and_cfg_of_the_right_type():
    boxes = make_registry()
    with pytest.raises(ValueError, match=r"Received: config=<class 'dict'>"):
        boxes.register("volume", config=dict)
    with pytest.raises(TypeError, match=r"must be a BoxConfig or a mapping. Received: cfg=3"):
        boxes.build("area", 3)
    with pytest.raises(TypeError, match=r"must be a mapping of keyword arguments"):
        boxes.build("perimeter", BoxConfig())


def test_project_registries_import_their_entries_on_first_lookup():
    assert "infnet" in MODELS.names()
    assert {"res2net50_v1b_26w_4s", "res2net_tiny"} <= set(BACKBONES.names())
    with pytest.raises(ConfigError, match=r"model\.name: unknown model 'infnt'; known: .*infnet"):
        MODELS.build("infnt")
