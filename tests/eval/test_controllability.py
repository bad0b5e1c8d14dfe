"""The controllability group against the calibration baselines, and its parts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from eval_fixtures import calibration_results, metric_value, make_ctx, single_thread, spec_of, tiny_explorer

from playworld.eval.api import EvalContext, GroupResult, NotApplicable, get_groups
from playworld.eval.controllability import IDMConfig, InverseDynamics, idm_score, random_actions
from playworld.models.baselines import CopyLast
from playworld.models.interface import WorldSpec
from playworld.spaces import ActionSpace

_threads = pytest.fixture(scope="module", autouse=True)(single_thread)


@pytest.fixture(scope="module")
def results() -> dict[str, GroupResult]:
    return calibration_results("controllability")


_v = metric_value


@pytest.mark.slow
def test_delta_psnr_oracle_clearly_positive_action_blind_models_zero(results):
    oracle = results["oracle"]
    assert _v(oracle, "delta_psnr") > 20  # true actions: exact (100 dB); random actions: the world diverges
    assert oracle.extra["delta_psnr"]["psnr_true_actions"] == 100.0
    assert all(d > 0 for d in oracle.curves["delta_psnr_by_step"])
    # copy-last and ignore-actions never look at the actions: identical rollouts, delta exactly 0
    assert _v(results["copy-last"], "delta_psnr") == 0.0
    assert _v(results["ignore-actions"], "delta_psnr") == pytest.approx(0.0, abs=1e-9)


@pytest.mark.slow
def test_inverse_dynamics_oracle_at_its_real_accuracy_baselines_near_chance(results):
    oracle = results["oracle"]
    real_acc = oracle.metrics["idm_accuracy"].floor
    chance = oracle.extra["inverse_dynamics"]["chance"]
    assert real_acc > chance + 0.25  # the judge itself works on real test pairs
    assert _v(oracle, "idm_accuracy") == pytest.approx(real_acc, abs=0.1)
    for name in ("copy-last", "ignore-actions"):
        res = results[name]
        assert res.metrics["idm_accuracy"].floor == real_acc  # same cached judge for every model
        assert _v(res, "idm_accuracy") < chance + 0.12
        assert len(res.curves["idm_accuracy_by_step"]) == 16


@pytest.mark.slow
def test_results_are_json(results):
    for res in results.values():
        json.dumps({"values": {k: m.value for k, m in res.metrics.items()}, "curves": res.curves,
                    "extra": res.extra}, allow_nan=False)


@pytest.mark.slow
def test_inverse_dynamics_model_is_cached_on_disk(tmp_path):
    ds = tiny_explorer()
    opts = {"controllability": {"idm": {"width": 8, "batch": 8, "steps": 3}}}
    first = get_groups()["controllability"](CopyLast(spec_of(ds)), make_ctx(ds, options=opts, cache={}, cache_dir=tmp_path, episodes=4))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].startswith("idm-") and files[1].endswith(".safetensors")
    again = get_groups()["controllability"](CopyLast(spec_of(ds)), make_ctx(ds, options=opts, cache={}, cache_dir=tmp_path, episodes=4))
    assert again.metrics["idm_accuracy"].floor == first.metrics["idm_accuracy"].floor


def test_no_actions_is_not_applicable():
    spec = WorldSpec(resolution=32, action_space=ActionSpace.none(), context=2)
    with pytest.raises(NotApplicable, match="action space is 'none'"):
        get_groups()["controllability"](CopyLast(spec), EvalContext(dataset=None, spec=spec))


def test_random_actions_are_seeded_and_in_the_space():
    like = torch.zeros(3, 4, dtype=torch.long)
    a = random_actions(ActionSpace.discrete(5), like, seed=1)
    assert a.shape == (3, 4) and a.dtype == torch.long and 0 <= a.min() and a.max() < 5
    assert torch.equal(a, random_actions(ActionSpace.discrete(5), like, seed=1))
    c = random_actions(ActionSpace.continuous([-1, 0], [1, 2]), torch.zeros(3, 4, 2), seed=0)
    assert c.shape == (3, 4, 2) and c.dtype == torch.float32
    assert (c[..., 0].abs() <= 1).all() and (c[..., 1] >= 0).all() and (c[..., 1] <= 2).all()


def test_idm_score_accuracy_and_r2():
    disc = ActionSpace.discrete(3)
    assert idm_score(disc, torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])) == 0.75
    cont = ActionSpace.continuous([-1, -1], [1, 1])
    t = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (100, 2)))
    assert idm_score(cont, t, t) == 1.0
    assert idm_score(cont, t.mean(0).expand_as(t), t) == pytest.approx(0.0, abs=1e-12)  # predicting the mean
    assert idm_score(cont, -t, t) < 0


def test_inverse_dynamics_network_shapes():
    frames = torch.randint(0, 256, (5, 3, 48, 48), dtype=torch.uint8)
    disc = InverseDynamics(IDMConfig(width=8), ActionSpace.discrete(4), resolution=48)
    assert disc(frames, frames).shape == (5, 4) and disc.predict(frames, frames).dtype == torch.long
    cont = InverseDynamics(IDMConfig(width=8, max_resolution=32), ActionSpace.continuous([0, 0, 0], [1, 1, 1]), resolution=48)
    assert cont.res == 32 and cont.predict(frames, frames).shape == (5, 3)


def test_inverse_dynamics_trains_on_continuous_actions():
    """A continuous judge standardises its targets and learns a brightness change it can see."""
    from types import SimpleNamespace

    from playworld.eval.controllability import train_idm

    class Shift:  # next frame = frame + 100 * action (one channel of a 1-d action in [0, 1])
        def sample(self, n, rng):
            a = torch.from_numpy(rng.uniform(0, 1, (n, 1, 1))).float()
            f0 = torch.from_numpy(rng.integers(0, 100, (n, 1, 3, 32, 32))).to(torch.uint8)
            f1 = (f0.float() + 100 * a.view(n, 1, 1, 1, 1)).round().to(torch.uint8)
            return SimpleNamespace(context_frames=f0, future_frames=f1, future_actions=a)

    space = ActionSpace.continuous([0], [1])
    torch.manual_seed(0)
    net = InverseDynamics(IDMConfig(width=8), space, resolution=32)
    train_idm(net, Shift(), IDMConfig(width=8, batch=32, steps=150, lr=3e-3))
    assert 0.3 < float(net.a_mean) < 0.7 and 0.2 < float(net.a_std) < 0.4
    b = Shift().sample(256, np.random.default_rng(1))
    assert idm_score(space, net.predict(b.context_frames[:, 0], b.future_frames[:, 0]), b.future_actions[:, 0]) > 0.8
