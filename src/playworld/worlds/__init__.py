"""Worlds: built-in numpy-rendered worlds, the Gymnasium adapter, video import, policies."""

from playworld.worlds.base import StepResult, World, list_worlds, make_world, register_world

__all__ = ["StepResult", "World", "list_worlds", "make_world", "register_world"]
