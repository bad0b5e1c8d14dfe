"""The EMA's warm-up: a short run's averaged weights are its recent weights, not its initial ones."""

import pytest
import torch
from torch.optim.swa_utils import AveragedModel

from playworld.train.loop import ema_decay_at, ema_update


def _ema_after(updates: int, warmup: bool) -> float:
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)  # the "initial weights"
    ema = AveragedModel(net, multi_avg_fn=ema_update(0.995, warmup), use_buffers=True)
    ema.update_parameters(net)  # the first update copies
    with torch.no_grad():
        net.weight.fill_(1.0)  # training moved the weights, and they stay there
    for _ in range(updates - 1):
        ema.update_parameters(net)
    return float(ema.module.weight.detach())


def test_warm_up_forgets_the_initial_weights_a_fixed_decay_keeps():
    plain, warm = _ema_after(340, False), _ema_after(340, True)
    assert plain == pytest.approx(1 - 0.995 ** 339, abs=1e-4)  # ~0.82: 18% of it still the initial weights
    assert warm > 0.9999 and plain < 0.83


def test_the_decay_rises_to_the_configured_one_and_stays():
    assert ema_decay_at(0.995, True, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.995, True, 90) == pytest.approx(0.91)
    assert ema_decay_at(0.995, True, 10_000) == 0.995 and ema_decay_at(0.995, False, 0) == 0.995
    steps = [ema_decay_at(0.9999, True, n) for n in range(0, 80_000, 997)]
    assert steps == sorted(steps) and steps[-1] < 0.9999  # monotone, below the cap for 90k updates
