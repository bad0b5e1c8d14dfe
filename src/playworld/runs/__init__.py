"""Runs read back: checkpoints (layout, metadata, rebuilding a network), presets, and `load`.

The layer between the model families and their consumers: train writes runs, and eval, play and
agents read them through this package without importing the trainer.
"""

from playworld.runs.checkpoints import build_from_checkpoint, list_checkpoints, read_metadata, resolve_checkpoint
from playworld.runs.files import read_run_config, read_run_meta
from playworld.runs.load import check_dataset_matches, load_world_model, open_dataset

__all__ = [
    "build_from_checkpoint", "check_dataset_matches", "list_checkpoints", "load_world_model", "open_dataset",
    "read_metadata", "read_run_config", "read_run_meta", "resolve_checkpoint",
]
