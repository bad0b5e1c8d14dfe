"""`playworld ...` with the tiny test family registered, for tests that need a separate process
(torchrun, signals): python cli_with_tiny.py train --model tiny-test ...

Two switches for the DDP tests, read from the environment:
    PLAYWORLD_TEST_DUMP_WEIGHTS=DIR   each rank writes DIR/rank<R>.pt, its network's weights when training
                                      ends (only rank 0 writes checkpoints, so this is how ranks are compared)
    PLAYWORLD_TEST_NO_ALLREDUCE=1     the trainer wraps its objective in a module that does NOT all-reduce
                                      gradients (a deliberately broken DDP: each rank steps on its own batch)
"""

import os
import sys
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).parent))
import tiny_family  # noqa: E402,F401

from playworld.cli import main  # noqa: E402
from playworld.train import distributed, loop  # noqa: E402

_WRAPPED: list[torch.nn.Module] = []  # the objective each DDP (or stand-in) wrapped


class _RecordingDDP(DistributedDataParallel):
    def __init__(self, module, *args, **kwargs):
        super().__init__(module, *args, **kwargs)
        _WRAPPED.append(module)


class _NoAllReduce(torch.nn.Module):
    """Stands where DDP would: forwards to the objective, and never synchronises a gradient."""

    def __init__(self, module, *args, **kwargs):
        super().__init__()
        self.module = module
        _WRAPPED.append(module)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def _dump_then_cleanup(d, _cleanup=distributed.cleanup):
    folder = os.environ.get("PLAYWORLD_TEST_DUMP_WEIGHTS")
    if folder and _WRAPPED:
        Path(folder).mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().cpu().clone() for k, v in _WRAPPED[-1].state_dict().items()}
        torch.save(weights, Path(folder) / f"rank{d.rank}.pt")
    _cleanup(d)


loop.DistributedDataParallel = _NoAllReduce if os.environ.get("PLAYWORLD_TEST_NO_ALLREDUCE") == "1" else _RecordingDDP
distributed.cleanup = _dump_then_cleanup

if __name__ == "__main__":
    main(sys.argv[1:])
