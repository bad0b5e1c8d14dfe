"""Presets and `--set` overrides, parsed by the dataclass field type (never eval)."""

from __future__ import annotations

import dataclasses

import pytest

from playworld.errors import PlayworldError
from playworld.models.registry import get_family, list_families
from playworld.runs.presets import PRESETS, load_preset, make_model_config
from playworld.train.config import TrainConfig, make_train_config
from playworld.options import coerce, parse_sets


def test_every_train_field_has_a_docstring():
    import inspect

    source = inspect.getsource(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        after = source.split(f"    {f.name}:", 1)[1].splitlines()[1].strip()
        assert after.startswith('"""'), f"TrainConfig.{f.name} has no docstring"


@pytest.mark.parametrize("name", PRESETS)
def test_presets_resolve_for_every_family(name):
    preset = load_preset(name)
    cfg = make_train_config(preset)
    assert cfg.steps > 0
    for family in list_families():
        make_model_config(get_family(family), preset)  # every preset section fits its family
    if name == "base":
        assert cfg.precision == "bf16" and cfg.compile
    if name == "small":
        assert 0 < cfg.minutes <= 10


def test_overrides_are_typed():
    sets = parse_sets(["train.lr=3e-4", "train.compile=true", "train.precision=bf16", "model.diffusion.steps=2",
                       "model.channels=[8, 16]"])
    cfg = make_train_config(None, sets["train"])
    assert cfg.lr == 3e-4 and cfg.compile is True and cfg.precision == "bf16"
    assert sets["model"] == {"steps": "2", "channels": "[8, 16]"}
    assert coerce("8,16", tuple[int, ...], "x") == (8, 16)
    assert coerce("none", int | None, "x") is None and coerce("3", int | None, "x") == 3
    assert coerce("off", bool, "x") is False
    assert coerce(1e-3, float, "x") == 1e-3 and coerce("1e-3", float, "x") == 1e-3  # YAML reads 1e-3 as a string
    for bad, tp in (("abc", float), ("2.5", int), ("maybe", bool), ("__import__('os')", int)):
        with pytest.raises(PlayworldError):
            coerce(bad, tp, "x")
    with pytest.raises(PlayworldError, match="steps must be >= 0"):
        make_train_config(None, {"steps": "-1"})
    with pytest.raises(PlayworldError, match="ema_decay"):
        make_train_config(None, {"ema_decay": "1.5"})


def test_a_preset_trains_a_family_with_its_own_section_and_the_others_without_it():
    """small ramps self forcing in for diffusion only: the other families cannot train it and keep teacher forcing."""
    preset = load_preset("small")
    diffusion = make_train_config(preset, family="diffusion")
    assert (diffusion.regime_from, diffusion.regime, diffusion.rollout) == ("teacher_forcing", "self_forcing", 2)
    assert diffusion.regime_switch_step > 0 and diffusion.regime_ramp_steps > 0
    for family in list_families():
        if family != "diffusion":
            cfg = make_train_config(preset, family=family)
            assert (cfg.regime_from, cfg.regime) == (None, "teacher_forcing"), family
            assert cfg.lr == diffusion.lr and cfg.batch_size == diffusion.batch_size  # the shared section applies
    # the command line still wins over the family's section
    assert make_train_config(preset, {"regime": "teacher_forcing"}, family="diffusion").regime == "teacher_forcing"
    with pytest.raises(PlayworldError, match="difusion"):
        make_train_config({"train": {"difusion": {"regime": "self_forcing"}}}, family="diffusion")
    with pytest.raises(PlayworldError, match="regime"):
        make_train_config({"train": {"diffusion": {"regime": "dreaming"}}}, family="diffusion")
