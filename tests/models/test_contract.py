"""The contract every registered model family keeps, checked with its `debug` preset on a tiny spec.

Parametrized over `list_families()`, so a new family is tested here with no edit. Families are
tested with a discrete action space; those in `EXTRA_SPACES` with continuous and absent actions too.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_model, save_model

from playworld.data.batch import Batch
from playworld.errors import PlayworldError
from playworld.models import get_family, list_families
from playworld.models.baselines import IgnoreActions
from playworld.models.interface import CAPABILITIES, WorldModel, WorldSpec, model_device
from playworld.runs.presets import load_preset, make_model_config, resolve_context
from playworld.spaces import ActionSpace

DEBUG_K = resolve_context(load_preset("debug"))  # K of the debug preset

RES, B = 32, 2
SPACES = {
    "discrete": ActionSpace.discrete(5),
    "continuous": ActionSpace.continuous([-1.0, -2.0], [1.0, 2.0]),
    "none": ActionSpace.none(),
}
EXTRA_SPACES = {"clip": ("continuous", "none"), "diffusion": ("continuous", "none"), "genie": ("continuous", "none"), "rssm": ("continuous", "none")}
CASES = [(f, "discrete") for f in list_families()] + [
    (f, kind) for f in list_families() for kind in EXTRA_SPACES.get(f, ())
]


def _setup(family_name: str, kind: str, seed: int = 0):
    family = get_family(family_name)
    config = make_model_config(family, load_preset("debug"))
    spec = WorldSpec(resolution=RES, action_space=SPACES[kind], context=DEBUG_K)
    torch.manual_seed(seed)
    return family, config, spec, family.build(config, spec)


def _actions(space: ActionSpace, b: int, t: int, g: torch.Generator) -> torch.Tensor:
    if space.kind == "continuous":
        low, high = torch.tensor(space.low), torch.tensor(space.high)
        return low + (high - low) * torch.rand(b, t, space.dim, generator=g)
    return torch.randint(space.n, (b, t), generator=g)


def _frames(b: int, t: int, actions: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(b, t, 3, RES, RES) uint8: a coloured square on a flat background, moved by the actions."""
    frames = torch.zeros(b, t, 3, RES, RES, dtype=torch.uint8)
    for i in range(b):
        bg = torch.randint(0, 120, (3,), generator=g, dtype=torch.uint8)
        fg = torch.randint(130, 256, (3,), generator=g, dtype=torch.uint8)
        y, x = (int(v) for v in torch.randint(4, RES - 12, (2,), generator=g))
        for j in range(t):
            a = actions[i, j]
            step = int(a) if a.ndim == 0 else int(a[0] > 0) + 1
            y, x = min(max(y + (step == 2) - (step == 1), 0), RES - 8), min(max(x + (step == 4) - (step == 3), 0), RES - 8)
            frames[i, j] = bg[:, None, None]
            frames[i, j, :, y : y + 8, x : x + 8] = fg[:, None, None]
    return frames


def _batch(family, config, spec: WorldSpec, b: int = B, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    k, f = spec.context, family.future_length(config)
    actions = _actions(spec.action_space, b, k + f, g)
    frames = _frames(b, k + f, actions, g)
    return Batch(
        context_frames=frames[:, :k], context_actions=actions[:, :k], future_actions=actions[:, k:],
        future_frames=frames[:, k:], future_rewards=torch.rand(b, f, generator=g),
        future_terminated=torch.zeros(b, f, dtype=torch.bool),
    )


def _rollout(model: WorldModel, batch: Batch, seed: int, steps: int = 2) -> list[torch.Tensor]:
    state = model.reset(batch.context_frames, batch.context_actions, seed=seed)
    out = []
    for j in range(steps):
        state, frame = model.step(state, batch.future_actions[:, min(j, batch.future_actions.shape[1] - 1)])
        out.append(frame)
    return out


@pytest.mark.parametrize("family_name,kind", CASES)
def test_shapes_and_interface(family_name, kind):
    family, config, spec, net = _setup(family_name, kind)
    model = family.world_model(net, config, spec)
    assert isinstance(model, WorldModel)
    # the model's spec is the data's, except that a latent-action model presents its own (wider) space
    assert dataclasses.replace(model.spec, action_space=spec.action_space) == spec
    assert model.spec.action_space.accepts(spec.action_space)
    frames = _rollout(model, _batch(family, config, spec), seed=0, steps=3)
    for frame in frames:
        assert frame.shape == (B, 3, RES, RES) and frame.dtype == torch.uint8


@pytest.mark.parametrize("family_name,kind", CASES)
def test_loss_is_finite_and_reaches_every_parameter(family_name, kind):
    family, config, spec, net = _setup(family_name, kind)
    loss, logs = family.loss(net, _batch(family, config, spec), config, 0, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(isinstance(v, float) for v in logs.values())
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing, f"parameters without a gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


@pytest.mark.parametrize("family_name,kind", CASES)
def test_step_is_deterministic_for_a_seed(family_name, kind):
    family, config, spec, net = _setup(family_name, kind)
    model = family.world_model(net, config, spec)
    batch = _batch(family, config, spec)
    a, b, c = _rollout(model, batch, seed=5), _rollout(model, batch, seed=5), _rollout(model, batch, seed=6)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    if family.stochastic:  # a sampling family must actually use its seed
        assert any(not torch.equal(x, z) for x, z in zip(a, c))


@pytest.mark.parametrize("family_name,kind", CASES)
def test_safetensors_round_trip_gives_identical_outputs(family_name, kind, tmp_path):
    family, config, spec, net = _setup(family_name, kind, seed=0)
    batch = _batch(family, config, spec)
    save_model(net, str(tmp_path / "model.safetensors"))
    _, _, _, other = _setup(family_name, kind, seed=1)  # different initial weights
    before = _rollout(family.world_model(other, config, spec), batch, seed=3)
    load_model(other, str(tmp_path / "model.safetensors"))
    expected = _rollout(family.world_model(net, config, spec), batch, seed=3)
    after = _rollout(family.world_model(other, config, spec), batch, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(expected, after))
    assert any(not torch.equal(x, y) for x, y in zip(expected, before))  # the load did something


@pytest.mark.slow
@pytest.mark.parametrize("family_name", list_families())
def test_overfits_a_tiny_batch(family_name):
    family, config, spec, net = _setup(family_name, "discrete")
    batch = _batch(family, config, spec, b=2, seed=1)

    def loss_at_fixed_noise() -> float:
        with torch.no_grad():
            return sum(float(family.loss(net, batch, config, 0, torch.Generator().manual_seed(s))[0]) for s in range(4)) / 4

    start = loss_at_fixed_noise()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for step in range(40):
        loss, _ = family.loss(net, batch, config, step, torch.Generator().manual_seed(100 + step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    end = loss_at_fixed_noise()
    assert end < 0.5 * start, f"loss {start:.4f} -> {end:.4f} after 40 steps on 2 examples"


# -- declared abilities: what a family claims is what its WorldModel is, and each claim works -----------


@pytest.mark.parametrize("family_name,kind", CASES)
def test_a_family_claims_exactly_the_abilities_its_model_has(family_name, kind):
    family, config, spec, net = _setup(family_name, kind)
    model = family.world_model(net, config, spec)
    unknown = set(family.capabilities) - set(CAPABILITIES)
    assert not unknown, f"{family_name} claims abilities models/interface.py does not declare: {unknown}"
    has = {name for name, protocol in CAPABILITIES.items() if isinstance(model, protocol)}
    assert has == set(family.capabilities), f"{family_name} claims {sorted(family.capabilities)}, has {sorted(has)}"


@pytest.mark.parametrize("family_name,kind", CASES)
def test_each_claimed_ability_works(family_name, kind):
    family, config, spec, net = _setup(family_name, kind)
    model = family.world_model(net, config, spec)
    batch = _batch(family, config, spec)
    state = model.reset(batch.context_frames, batch.context_actions, seed=0)
    action = batch.future_actions[:, 0]
    claims = set(family.capabilities)
    if "OnDevice" in claims:
        assert model_device(model) == next(net.parameters()).device
    if "LatentState" in claims:
        features = model.features(state)
        assert features.shape == (B, model.feature_dim) and features.dtype == torch.float32
        advanced = model.advance(state, action)  # the state `step` reaches, without decoding a frame
        stepped, frame = model.step(state, action)
        assert torch.equal(model.features(advanced), model.features(stepped))
        observed = model.observe(state, frame, action)
        assert model.features(observed).shape == (B, model.feature_dim)
    if "RewardHead" in claims:
        reward = model.predict_reward(state)
        assert reward.shape == (B,) and torch.isfinite(reward).all()
    if "ContinueHead" in claims:
        cont = model.predict_continue(state)
        assert cont.shape == (B,) and bool(((cont >= 0) & (cont <= 1)).all())
    if "TunableSampler" in claims:
        assert 1 <= model.sampling_steps <= model.max_sampling_steps
        one = model.step(state, action)[1]
        assert model.set_sampling_steps(3) == model.sampling_steps == 3
        three = model.step(state, action)[1]
        assert not torch.equal(one, three)  # the dial changes the sampler
        with pytest.raises(PlayworldError):
            model.set_sampling_steps(model.max_sampling_steps + 1)


# -- generation follows the actions: a briefly trained model's frames differ by action ---------------
# The loss gradient above shows action parameters are trained, not that generation uses them: a sampler
# that dropped the action would pass it. Here each family trains for a few seconds on a shifter world
# (a white square that each action moves by one square) and rolls out from the same contexts and seed
# under different action sequences: the frames must differ, by a fair share of what the real shifter
# shows, while identical actions give identical frames. An action-blind model gives 0 and must fail.

SHIFT_RES, SQUARE, SHIFT_H = 16, 4, 2
SHIFTS = {0: (0, 0), 1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}  # noop, up, down, left, right (in squares)


def _shifter(start: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """start (b, 2) square positions in pixels, actions (b, t) -> frames (b, t, 3, R, R) uint8: the square
    after each action (wrapping at the edges)."""
    b, t = actions.shape
    frames = torch.zeros(b, t, 3, SHIFT_RES, SHIFT_RES, dtype=torch.uint8)
    for i in range(b):
        y, x = (int(v) for v in start[i])
        for j in range(t):
            dy, dx = SHIFTS[int(actions[i, j])]
            y, x = (y + dy * SQUARE) % SHIFT_RES, (x + dx * SQUARE) % SHIFT_RES
            frames[i, j, :, y : y + SQUARE, x : x + SQUARE] = 255
    return frames


def _shifter_batch(k: int, f: int, b: int, g: torch.Generator) -> Batch:
    actions = torch.randint(5, (b, k + f), generator=g)
    frames = _shifter(torch.randint(0, SHIFT_RES // SQUARE, (b, 2), generator=g) * SQUARE, actions)
    return Batch(context_frames=frames[:, :k], context_actions=actions[:, :k], future_actions=actions[:, k:],
                 future_frames=frames[:, k:], future_rewards=torch.zeros(b, f), future_terminated=torch.zeros(b, f, dtype=torch.bool))


def _takes_actions(family_name: str) -> bool:
    family = get_family(family_name)
    config = make_model_config(family, load_preset("debug"))
    spec = WorldSpec(resolution=SHIFT_RES, action_space=ActionSpace.discrete(5), context=DEBUG_K)
    return family.world_model(family.build(config, spec), config, spec).spec.action_space == spec.action_space


@pytest.fixture(scope="module", params=[f for f in list_families() if _takes_actions(f)])
def shifter_model(request) -> WorldModel:
    """The family's debug model after 200 Adam steps (seconds at one thread) on the shifter."""
    family = get_family(request.param)
    config = make_model_config(family, load_preset("debug"))
    spec = WorldSpec(resolution=SHIFT_RES, action_space=ActionSpace.discrete(5), context=DEBUG_K)
    torch.manual_seed(0)
    net = family.build(config, spec)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for step in range(200):
        batch = _shifter_batch(spec.context, family.future_length(config), 8, g)
        loss, _ = family.loss(net, batch, config, step, torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return family.world_model(net.eval(), config, spec)


def _action_effect(model: WorldModel, seed: int = 0) -> tuple[float, float, float]:
    """From 4 shifter contexts, SHIFT_H steps of each move (up, down, left, right) with one seed ->
    (mean |frame difference| between different moves, between two rollouts of the same move, between
    the real shifter's frames of different moves), in grey levels."""
    start = torch.tensor([[0, 0], [4, 8], [8, 4], [12, 12]])
    context_actions = torch.zeros(len(start), DEBUG_K, dtype=torch.long)
    context = _shifter(start, context_actions)

    def generated(a: int) -> torch.Tensor:
        state, frames = model.reset(context, context_actions, seed=seed), []
        for _ in range(SHIFT_H):
            state, frame = model.step(state, torch.full((len(start),), a))
            frames.append(frame.float())
        return torch.stack(frames, 1)

    def real(a: int) -> torch.Tensor:  # the real shifter continues from the context's last position
        return _shifter(start, torch.cat([context_actions, torch.full((len(start), SHIFT_H), a)], 1))[:, DEBUG_K:].float()

    def mean_pair_difference(rollouts: dict[int, torch.Tensor]) -> float:
        pairs = [(a, b) for a in rollouts for b in rollouts if a < b]
        return sum(float((rollouts[a] - rollouts[b]).abs().mean()) for a, b in pairs) / len(pairs)

    moves = (1, 2, 3, 4)
    rollouts = {a: generated(a) for a in moves}
    same = float((generated(1) - rollouts[1]).abs().mean())
    return mean_pair_difference(rollouts), same, mean_pair_difference({a: real(a) for a in moves})


def assert_generation_follows_actions(model: WorldModel) -> None:
    differ, same, real = _action_effect(model)
    assert same == 0.0, f"identical actions and seed gave frames {same:.3f} grey levels apart"
    assert differ > 0.05 * real, f"frames differ by {differ:.3f} grey levels between actions (the real shifter: {real:.1f})"


@pytest.mark.slow
def test_a_briefly_trained_model_generates_different_frames_for_different_actions(shifter_model):
    assert_generation_follows_actions(shifter_model)


@pytest.mark.slow
def test_the_action_check_fails_on_an_action_blind_model(shifter_model):
    blind = IgnoreActions(shifter_model, mode="noop")  # the same model, every action replaced by the no-op
    with pytest.raises(AssertionError, match="differ by 0.000 grey levels"):
        assert_generation_follows_actions(blind)
