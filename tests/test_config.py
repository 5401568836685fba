"""Configuration objects: one definition, round-tripped through JSON, set from the command line."""

import dataclasses
import json

import pytest

from colorize_core.config import describe, from_dict, with_overrides
from colorize_core.train import TrainConfig


def test_nested_config_survives_json():
    cfg = with_overrides(TrainConfig(), ["steps=12", "augment.degrade.p=0.5", "augment.degrade.fade=0.2,0.8", "gan.disc.layers=2"])
    back = from_dict(TrainConfig, json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert back == cfg and back.augment.degrade.fade == (0.2, 0.8) and back.gan.disc.layers == 2


def test_overrides_are_typed_and_unknown_keys_refused():
    cfg = with_overrides(TrainConfig(), ["lr=1e-4", "rebalance=false", "precision=float32"])
    assert cfg.lr == 1e-4 and cfg.rebalance is False and cfg.precision == "float32"
    for bad, why in [("stepz=3", "no field"), ("augment.size=3", "no field"), ("steps=many", "not a int"), ("steps", "key=value")]:
        with pytest.raises(ValueError, match=why):
            with_overrides(TrainConfig(), [bad])
    with pytest.raises(ValueError, match="unknown field"):
        from_dict(TrainConfig, {"stepz": 3})


def test_describe_lists_every_leaf_with_its_default():
    lines = describe(TrainConfig)
    assert "steps=1000" in lines and "augment.degrade.p=0.0" in lines and "gan.weight=0.0" in lines
    assert with_overrides(TrainConfig(), lines) == TrainConfig(), "the listing itself parses back to the defaults"
