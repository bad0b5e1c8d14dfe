"""Presets: small override files for a family's Config, the training settings and the context length K.

    context: 4                 # K, shared by every family (WorldSpec.context once training starts)
    model: {diffusion: {...}}  # per family, only the fields the preset changes
    train: {...}               # TrainConfig fields, and {diffusion: {...}}: those only that family trains with

`configs/{debug,small,base}.yaml` in the package, or any .yaml path. A family's Config is resolved
defaults <- the preset's `model.<family>:` section <- `--set model.<field>=...` overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from playworld.errors import PlayworldError
from playworld.models.interface import DEFAULT_CONTEXT, check_context
from playworld.models.registry import Family
from playworld.options import coerce, coerce_fields

PRESETS = ("debug", "small", "base")
PRESET_DIR = Path(__file__).resolve().parent.parent / "configs"


def load_preset(name: str) -> dict[str, Any]:
    """The preset `name` (debug, small, base) or a YAML file path -> {'context': K | None, 'model': {...}, 'train': {...}}."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise PlayworldError(f"preset file {path} does not exist", "check the path")
        text = path.read_text()
    elif name in PRESETS:
        text = (PRESET_DIR / f"{name}.yaml").read_text()
    else:
        raise PlayworldError(f"unknown preset {name!r}", f"choose one of {', '.join(PRESETS)} or pass a .yaml file")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise PlayworldError(f"preset {name} is not valid YAML: {e}", "fix the file") from None
    if not isinstance(data, dict):
        raise PlayworldError(f"preset {name} must be a mapping with model: and train: keys", "fix the file")
    return {"context": data.get("context"), "model": dict(data.get("model") or {}), "train": dict(data.get("train") or {})}


def make_model_config(family: Family, preset: dict[str, Any] | None = None, sets: dict[str, str] | None = None) -> Any:
    """The family's Config <- the preset's `model.<family>:` section <- command-line overrides."""
    section = f"model.{family.name}"
    from_preset = dict(((preset or {}).get("model") or {}).get(family.name) or {})
    values = coerce_fields(family.Config, from_preset, section)
    values.update(coerce_fields(family.Config, dict(sets or {}), section))
    return family.make_config(values)


def resolve_context(preset: dict[str, Any] | None = None, value: Any = None) -> int:
    """K: `value` (from `--set model.context=K`) <- the preset's `context:` <- DEFAULT_CONTEXT; checked once."""
    chosen = value if value is not None else (preset or {}).get("context")
    k = DEFAULT_CONTEXT if chosen is None else coerce(chosen, int, "model.context")
    check_context(k)
    return int(k)
