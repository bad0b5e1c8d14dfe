"""The genie family beyond the shared contract: FSQ codes, KV-cache exactness, latent actions, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from playworld.errors import PlayworldError
from playworld.models import get_family
from playworld.models.genie.sampler import maskgit_decode
from playworld.models.genie.tokenizer import FSQ
from playworld.models.interface import WorldSpec
from playworld.runs.presets import load_preset, make_model_config, resolve_context
from playworld.spaces import ActionSpace

DEBUG_K = resolve_context(load_preset("debug"))  # K of the debug preset

RES = 32


def _family_config(**sets):
    family = get_family("genie")
    return family, make_model_config(family, load_preset("debug"), {k: str(v) for k, v in sets.items()})


def _spec(space: ActionSpace, config) -> WorldSpec:
    return WorldSpec(resolution=RES, action_space=space, context=DEBUG_K)


# -- spatial rotary code ----------------------------------------------------------------------------


def test_spatial_rotary_scores_depend_only_on_the_offset_between_tokens():
    from playworld.models.genie.dynamics import rotary_2d

    side, dh = 6, 16
    grid = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij"), -1).reshape(-1, 2)
    q, k = torch.randn(dh, dtype=torch.float64), torch.randn(dh, dtype=torch.float64)
    n = side * side
    scores = rotary_2d(q.expand(n, dh), grid) @ rotary_2d(k.expand(n, dh), grid).T  # (N, N): same q, k everywhere
    by_offset: dict[tuple[int, int], list[float]] = {}
    for i in range(n):
        for j in range(n):
            by_offset.setdefault(tuple((grid[j] - grid[i]).tolist()), []).append(float(scores[i, j]))
    spreads = [max(v) - min(v) for v in by_offset.values()]
    assert max(spreads) < 1e-9  # one score per (row, column) offset, wherever the pair sits
    # and different offsets score differently (without the code, the same q and k would score every pair alike)
    assert len({round(v[0], 6) for v in by_offset.values()}) > len(by_offset) // 2


def test_spatial_rope_needs_head_widths_divisible_by_four():
    with pytest.raises(PlayworldError, match="2D rotary") as err:
        _family_config(dim=24, heads=4)  # heads of width 6: even (time code) but not divisible by 4
    assert "spatial_rope=false" in err.value.fix
    _family_config(dim=24, heads=4, spatial_rope="false")  # the time code alone fits


# -- FSQ ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [(5, 5, 5), (8, 5, 5, 5), (2, 3, 4)])
def test_fsq_round_trips_every_code(levels):
    fsq = FSQ(levels)
    assert fsq.vocab == math.prod(levels)
    indices = torch.arange(fsq.vocab).view(1, -1, 1)  # every code once, as a (B, h, w) grid
    codes = fsq.indices_to_codes(indices)  # (1, d, vocab, 1)
    assert codes.shape == (1, len(levels), fsq.vocab, 1) and codes.abs().max() <= 1
    assert torch.equal(fsq.codes_to_indices(codes), indices)
    # distinct indices give distinct codes, and the quantizer maps its own grid back onto itself
    assert torch.unique(codes[0, :, :, 0].t(), dim=0).shape[0] == fsq.vocab
    z = torch.randn(4, len(levels), 6, 6) * 3
    q = fsq(z)
    assert torch.equal(fsq.indices_to_codes(fsq.codes_to_indices(q)), q)
    per_channel = [torch.unique(q[:, i]).numel() for i in range(len(levels))]
    assert all(n <= lv for n, lv in zip(per_channel, levels))


def test_fsq_passes_gradients_straight_through():
    fsq = FSQ((5, 5, 5))
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    fsq(z).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


# -- MaskGIT and the KV cache -----------------------------------------------------------------------


def test_maskgit_commits_every_token_in_the_given_steps():
    calls = []

    def logits_fn(tokens):
        calls.append(int((tokens == 7).sum()))
        return torch.randn(tokens.shape[0], tokens.shape[1], 7, generator=torch.Generator().manual_seed(len(calls)))

    out = maskgit_decode(logits_fn, 2, 16, 7, 4, 1.0, 0.0, torch.Generator().manual_seed(0), "cpu")
    assert out.shape == (2, 16) and int(out.max()) < 7  # no mask token left
    assert calls == sorted(calls, reverse=True) and calls[0] == 32 and len(calls) == 4


def _rollout(model, frames, actions, seed, steps):
    state = model.reset(frames, actions, seed=seed)
    out = []
    for j in range(steps):
        state, frame = model.step(state, actions[:, j % actions.shape[1]])
        out.append(frame)
    return out


@pytest.mark.parametrize("kind", ["discrete", "none"])
def test_kv_cache_generation_equals_recomputing_the_context(kind):
    family, config = _family_config(temperature=1.0)
    space = ActionSpace.discrete(5) if kind == "discrete" else ActionSpace.none()
    spec = _spec(space, config)
    torch.manual_seed(0)
    net = family.build(config, spec).double()  # float64: the two paths agree to ~1e-15, so no sampled token flips
    cached = family.world_model(net, config, spec)
    uncached = family.world_model(net, family.make_config({**vars(config), "cache": False}), spec)
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (2, 3, 3, RES, RES), dtype=torch.uint8, generator=g)
    actions = torch.randint(cached.spec.action_space.n, (2, 3), generator=g)
    # 7 steps: past the receptive field (layers * K = 4 frames), so the cache and history both slide
    a = _rollout(cached, frames, actions, seed=4, steps=7)
    b = _rollout(uncached, frames, actions, seed=4, steps=7)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    c = _rollout(cached, frames, actions, seed=5, steps=7)
    assert any(not torch.equal(x, z) for x, z in zip(a, c))


# -- latent actions ---------------------------------------------------------------------------------


def test_latent_actions_train_and_play_on_action_free_data():
    family, config = _family_config(lam_warmup=0)  # actions: auto; quantized from the first step
    spec = _spec(ActionSpace.none(), config)
    torch.manual_seed(0)
    net = family.build(config, spec)
    assert net.mode == "latent" and net.lam is not None
    g = torch.Generator().manual_seed(0)
    from playworld.data.batch import Batch

    frames = torch.randint(0, 256, (2, 3, 3, RES, RES), dtype=torch.uint8, generator=g)
    batch = Batch(frames[:, :2], torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 1, dtype=torch.long),
                  frames[:, 2:], torch.zeros(2, 1), torch.zeros(2, 1, dtype=torch.bool))
    loss, logs = family.loss(net, batch, config, 0, g)
    loss.backward()
    assert torch.isfinite(loss) and {"lam_recon", "lam_vq", "recon_psnr", "dynamics_ce"} <= set(logs)
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    model = family.world_model(net, config, spec)
    assert model.spec.action_space == ActionSpace.discrete(config.codebook, [f"latent {i}" for i in range(config.codebook)])
    state = model.reset(frames[:, :2], torch.zeros(2, 2, dtype=torch.long), seed=0)
    for a in range(config.codebook):
        _, frame = model.step(state, torch.full((2,), a))
        assert frame.shape == (2, 3, RES, RES) and frame.dtype == torch.uint8
    with pytest.raises(PlayworldError, match="out of range"):
        model.step(state, torch.full((2,), config.codebook))


def test_staged_training_trains_the_tokenizer_alone_then_the_dynamics_on_frozen_tokens():
    from playworld.data.batch import Batch

    family, config = _family_config(tokenizer_steps=3, lam_warmup=0)
    spec = _spec(ActionSpace.none(), config)
    torch.manual_seed(0)
    net = family.build(config, spec)
    assert family.skips_parameters(config) and not family.skips_parameters(_family_config()[1])
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 3, 3, RES, RES), dtype=torch.uint8, generator=g)
    batch = Batch(frames[:, :2], torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 1, dtype=torch.long),
                  frames[:, 2:], torch.zeros(2, 1), torch.zeros(2, 1, dtype=torch.bool))

    def grads(step):
        net.zero_grad(set_to_none=True)
        loss, logs = family.loss(net, batch, config, step, g)
        loss.backward()
        has = {n.split(".")[0] for n, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        return has, logs

    has, logs = grads(2)  # the tokenizer's stage: no dynamics (nor its cost), the LAM trains beside it
    assert has == {"tokenizer", "lam"} and "dynamics_ce" not in logs
    has, logs = grads(3)  # then the tokenizer is frozen; the dynamics and the LAM train on its tokens
    assert has == {"dynamics", "actions", "lam"} and "dynamics_ce" in logs
    assert not any(p.requires_grad for p in net.tokenizer.parameters())


def test_a_staged_run_saves_the_frozen_tokenizer_in_its_ema_model(tmp_path):
    from playworld.data.collect import collect
    from playworld.runs.load import load_world_model
    from playworld.train.loop import train

    collect("explorer", tmp_path / "data", episodes=2, steps=12, resolution=RES, progress=False,
            world_options={"map_size": 48, "n_coins": 8})
    train(tmp_path / "run", data=tmp_path / "data", model="genie", preset="debug", steps=4,
          sets=["model.tokenizer_steps=2", "model.actions=true"], progress=False)
    from safetensors.torch import load_file

    ckpt = sorted((tmp_path / "run" / "checkpoints").iterdir())[-1]
    ema, raw = load_file(ckpt / "model.safetensors"), load_file(ckpt / "raw.safetensors")
    tok = [k for k in raw if k.startswith("tokenizer.")]
    assert tok and all(torch.equal(ema[k], raw[k]) for k in tok)  # copied, not averaged
    dyn = [k for k in raw if k.startswith("dynamics.") and raw[k].is_floating_point()]
    assert any(not torch.equal(ema[k], raw[k]) for k in dyn)  # the training parts are still averaged
    load_world_model(tmp_path / "run")


def test_the_lam_warms_up_unquantized_then_starts_its_codebook_from_the_latents():
    from playworld.models.genie.lam import LatentActionModel

    torch.manual_seed(0)
    lam = LatentActionModel(codebook=4, dim=8, channels=(8, 16), beta=0.25, warmup=2).train()
    g = torch.Generator().manual_seed(0)
    prev, nxt = (torch.rand(16, 3, RES, RES, generator=g) * 2 - 1 for _ in range(2))
    for step in range(2):  # warm-up: the latent passes unquantized (not one of the 4 codes)
        latent, idx, _ = lam.infer(prev, nxt)
        codes = torch.nn.functional.normalize(lam.vq.codebook.detach(), dim=-1)
        assert not torch.allclose(latent, codes[idx], atol=1e-3)
        lam(prev, nxt)[0].backward()
    assert int(lam.steps) == 2
    before = lam.vq.codebook.detach().clone()
    loss, idx, logs = lam(prev, nxt)  # step 2: k-means codes from this batch's latents, then quantized
    assert not torch.equal(lam.vq.codebook, before)
    assert torch.allclose(lam.vq.codebook.detach().norm(dim=-1), torch.ones(4), atol=1e-5)
    assert len(set(idx.tolist())) > 1  # the codes sit among the latents, not off to one side
    latent, idx, _ = lam.infer(prev, nxt)
    torch.testing.assert_close(latent, torch.nn.functional.normalize(lam.vq.codebook.detach(), dim=-1)[idx])
    # the step count is saved with the weights, so a resumed run does not warm up again
    assert "steps" in lam.state_dict()


def test_latent_actions_can_be_forced_on_labelled_data():
    family, config = _family_config(actions="latent")
    net = family.build(config, _spec(ActionSpace.discrete(5), config))
    assert net.mode == "latent"
    assert family.world_model(net, config, _spec(ActionSpace.discrete(5), config)).spec.action_space.n == config.codebook


# -- bad input --------------------------------------------------------------------------------------


def test_true_actions_on_action_free_data_is_an_error_at_build_time():
    family, config = _family_config(actions="true")
    with pytest.raises(PlayworldError, match="has none") as err:
        family.build(config, _spec(ActionSpace.none(), config))
    assert "model.actions=latent" in err.value.fix


@pytest.mark.parametrize("size", [0, 1])
def test_a_codebook_under_two_is_an_error(size):
    with pytest.raises(PlayworldError, match="codebook"):
        _family_config(codebook=size)


def test_a_codebook_larger_than_the_training_transitions_is_an_error(tmp_path):
    from playworld.data.collect import collect

    data = collect("physics/uniform", tmp_path / "clip", episodes=1, steps=3, resolution=RES, progress=False)
    family, config = _family_config(codebook=16)
    spec = _spec(data.action_space, config)
    with pytest.raises(PlayworldError, match="larger than the 3 training transitions") as err:
        family.check_dataset(config, spec, data)
    assert "model.codebook" in err.value.fix
    family.check_dataset(family.make_config({**vars(config), "codebook": 2}), spec, data)  # this one fits
    true_config = family.make_config({**vars(config), "actions": "true"})
    with pytest.raises(PlayworldError, match="has none"):
        family.check_dataset(true_config, spec, data)
