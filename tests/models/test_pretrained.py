"""The --init folder rules every family that starts from a diffusers model shares (models/pretrained.py): a
missing folder, a folder without config.json, a config.json that is not JSON or names another model, a
pipeline's scheduler config that is not JSON; each a PlayworldError naming the fix, for clip and diffusion alike."""

from __future__ import annotations

import json

import pytest

from playworld.errors import PlayworldError
from playworld.models import get_family
from playworld.models.interface import WorldSpec
from playworld.runs.presets import load_preset, make_model_config, resolve_context
from playworld.spaces import ActionSpace

pytest.importorskip("diffusers", reason="--init reads diffusers folders: pip install -e '.[video]'")

FAMILIES = {"clip": ("transformer", "LatteTransformer3DModel", {}),
            "diffusion": ("unet", "UNet2DModel", {"backbone": "diffusers", "residual": "false", "prediction": "epsilon"})}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_bad_folder_is_a_clear_error(name, tmp_path):
    subfolder, backbone, sets = FAMILIES[name]
    family = get_family(name)
    config = make_model_config(family, load_preset("debug"), sets)
    spec = WorldSpec(resolution=16, action_space=ActionSpace.discrete(5), context=resolve_context(load_preset("debug")))
    net = family.build(config, spec)
    with pytest.raises(PlayworldError, match="no such folder") as e:
        family.init_from(net, config, spec, tmp_path / "nowhere")
    assert "save_pretrained" in e.value.fix
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlayworldError, match=f"no config.json there or in .*{subfolder}") as e:
        family.init_from(net, config, spec, tmp_path / "empty")
    assert backbone in e.value.fix
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{")
    with pytest.raises(PlayworldError, match="config.json is not JSON"):
        family.init_from(net, config, spec, tmp_path / "broken")
    (tmp_path / "other" / subfolder).mkdir(parents=True)
    (tmp_path / "other" / subfolder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    with pytest.raises(PlayworldError, match=f"'AutoencoderKL', not a {backbone}"):
        family.init_from(net, config, spec, tmp_path / "other")
