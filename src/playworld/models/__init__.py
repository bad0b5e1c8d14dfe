"""World models: the interface, the family registry, baselines, one sub-package per family."""

from playworld.models.interface import WorldModel, WorldSpec
from playworld.models.registry import Family, get_family, list_families, register_family

__all__ = ["Family", "WorldModel", "WorldSpec", "get_family", "list_families", "register_family"]
