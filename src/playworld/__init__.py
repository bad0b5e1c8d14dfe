"""playworld: action-conditioned world models you can train on a CPU, play in a browser, and evaluate.

    import playworld
    model = playworld.load("runs/quickstart")      # any family -> WorldModel
"""

from __future__ import annotations

__version__ = "0.1.0"


def load(run_dir, device="cpu", checkpoint=None):
    """Load the trained model in `run_dir` (any family) as a `WorldModel`."""
    # imported here, not at the top: every `playworld.*` import runs this file first, and the runs layer
    # pulls in torch (about 1.4 s), which `playworld --help` must not pay
    from playworld.runs.load import load_world_model

    return load_world_model(run_dir, device=device, checkpoint=checkpoint)


__all__ = ["load", "__version__"]
