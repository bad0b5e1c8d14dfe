"""The clip family's parts: the denoiser is diffusers' Latte, chunks commit to their action, the schedulers
solve a known case, --init loads a saved backbone, and a clip run trains, evaluates and plays in a browser.

The contract itself (shapes, seeds, gradients, abilities, actions followed) is tests/models/test_contract.py's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from playworld.benchmarks import RESOLUTION, clip_chunk_lengths
from playworld.data.collect import collect
from playworld.errors import PlayworldError
from playworld.models import get_family, list_families
from playworld.models.interface import WorldSpec
from playworld.play.loading import load_target
from playworld.play.server import PlayServer, ServerThread
from playworld.runs.load import load_world_model
from playworld.runs.presets import load_preset, make_model_config, resolve_context
from playworld.spaces import ActionSpace
from playworld.train.loop import train

diffusers = pytest.importorskip("diffusers", reason="the clip family needs the video extra: pip install -e '.[video]'")
from diffusers.models.transformers.latte_transformer_3d import LatteTransformer3DModel

from play.conftest import free_port  # tests/ is on the path (its conftest.py is in no package)
from play.test_live import CHROMIUM_ARGS, hold, until
from playworld.models.clip.loss import training_timesteps
from playworld.models.clip.network import transformer_config
from playworld.models.clip.sampler import SAMPLING_SCHEDULERS, sample, training_schedule

DEBUG_K = resolve_context(load_preset("debug"))
RES = 16
FAMILY = get_family("clip")


def _setup(**overrides):
    config = make_model_config(FAMILY, load_preset("debug"), {k: str(v) for k, v in overrides.items()})
    spec = WorldSpec(resolution=RES, action_space=ActionSpace.discrete(5), context=DEBUG_K)
    return config, spec


def _context(b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, DEBUG_K, 3, RES, RES), generator=g, dtype=torch.uint8), torch.randint(5, (b, DEBUG_K), generator=g)


def _backbone(config, spec, seed: int = 1) -> LatteTransformer3DModel:
    """A random LatteTransformer3DModel of the run's architecture, as a pretrained model would be saved."""
    torch.manual_seed(seed)
    return LatteTransformer3DModel(**transformer_config(config, spec)).eval()


def _latte(backbone: LatteTransformer3DModel, sequence: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """diffusers' own forward on (B, F, C, H, W) at one timestep per clip, with an (unused) caption."""
    caption = torch.zeros(sequence.shape[0], 1, backbone.config.caption_channels)
    return backbone(sequence.permute(0, 2, 1, 3, 4), t, encoder_hidden_states=caption).sample.permute(0, 2, 1, 3, 4)


# -- the network is diffusers' Latte ---------------------------------------------------------------------


def test_with_its_new_inputs_zeroed_the_denoiser_computes_what_diffusers_latte_computes():
    config, spec = _setup()
    backbone = _backbone(config, spec)
    net = FAMILY.build(config, spec).eval()
    net.transformer.load_state_dict(backbone.state_dict())
    f = spec.context + config.chunk
    x, t, actions = torch.randn(2, f, 3, RES, RES), torch.tensor([10.0, 700.0]), torch.randint(5, (2, f))
    with torch.no_grad():
        before = net(x, t[:, None].expand(2, f), actions)
        net.zero_new_inputs()
        after = net(x, t[:, None].expand(2, f), actions)
        reference = _latte(backbone, x, t)
    # diffusers' forward, frame by frame: to float rounding (the suite's other tests change torch's threads, and
    # with them the order of a reduction's sums: ~1e-7 apart), while the inputs before zeroing moved it ~1e-1
    torch.testing.assert_close(after, reference, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(before, reference, atol=1e-4)  # the actions and roles did enter before
    with torch.no_grad():  # per-frame timesteps: a clean context changes the future frames' prediction
        mixed = net(x, torch.cat([torch.zeros(2, spec.context), t[:, None].expand(2, config.chunk)], 1), actions)
    assert not torch.allclose(mixed[:, spec.context:], reference[:, spec.context:], atol=1e-4)


def test_the_schedulers_recover_known_data_from_pure_noise():
    """For data that is one constant the ideal v-prediction is known: every scheduler must land on it."""
    config, _ = _setup()
    schedule = training_schedule(config)
    assert float(schedule.alphas_cumprod[-1]) == 0.0  # zero terminal SNR: the last timestep is pure noise
    for name, cls in SAMPLING_SCHEDULERS.items():
        scheduler = cls.from_config(schedule.config)

        def ideal(x, t):
            a = schedule.alphas_cumprod[int(t)]
            x0 = torch.full_like(x, 0.3)
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt().clamp_min(1e-8)
            return a.sqrt() * eps - (1 - a).sqrt() * x0

        for steps in (1, 2, 4):
            x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
            assert torch.allclose(sample(ideal, x, scheduler, steps, None), torch.full((5, 3), 0.3), atol=1e-3), (name, steps)


def test_config_rejects_bad_values():
    for bad in ({"scheduler": "heun"}, {"chunk": 0}, {"prediction_type": "epsilon"}, {"context_noise_max": 1000}, {"data_scale": 0},
                {"timestep_sampling": "cosine"}, {"logit_std": 0}, {"pure_noise": 1.5}):
        with pytest.raises(PlayworldError):
            make_model_config(FAMILY, load_preset("debug"), {k: str(v) for k, v in bad.items()})


def test_logit_normal_timesteps_lean_to_the_noisy_end_when_their_mean_is_positive():
    g = torch.Generator().manual_seed(0)
    uniform, _ = _setup()
    shifted, _ = _setup(timestep_sampling="logit_normal", logit_mean=1.0)
    u, s = training_timesteps(4000, uniform, g, "cpu"), training_timesteps(4000, shifted, g, "cpu")
    assert 0 <= int(s.min()) and int(s.max()) < shifted.train_timesteps and s.dtype == torch.int64
    assert abs(float(u.float().mean()) - 500) < 25 and float(s.float().mean()) > 650  # sigmoid(N(1, 1)) has mean ~0.70


def test_a_pure_noise_fraction_of_the_timesteps_is_the_last_one_where_sampling_starts():
    g = torch.Generator().manual_seed(0)
    config, _ = _setup(pure_noise=0.5)
    t = training_timesteps(4000, config, g, "cpu")
    last = t == config.train_timesteps - 1
    assert 0.45 < float(last.float().mean()) < 0.55  # (uniform draws alone hit the last timestep 1 time in 1000)
    assert abs(float(t[~last].float().mean()) - 500) < 25  # the rest as before
    none, _ = _setup(pure_noise=0.0)
    assert float((training_timesteps(4000, none, g, "cpu") == none.train_timesteps - 1).float().mean()) < 0.01


def test_with_latte_init_an_untrained_denoiser_predicts_almost_nothing_but_every_weight_learns():
    config, spec = _setup(latte_init="true")
    torch.manual_seed(0)
    net = FAMILY.build(config, spec)
    f = spec.context + config.chunk
    out = net(torch.randn(2, f, 3, RES, RES), torch.full((2, f), 999.0), torch.randint(5, (2, f)))
    assert 0 < float(out.std()) < 0.2  # v ~ 0: at pure noise the clean estimate is ~0 ('nothing moves' with residual)
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in net.named_parameters() if p.requires_grad)


def test_action_tokens_start_at_zero_and_then_carry_each_frames_action_into_its_tokens():
    config, spec = _setup(action_tokens="true", latte_init="true")
    plain_config, _ = _setup(latte_init="true")
    torch.manual_seed(0)
    net = FAMILY.build(config, spec)
    plain = FAMILY.build(plain_config, spec)
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("action_tokens.")})
    f = spec.context + config.chunk
    x, t = torch.randn(2, f, 3, RES, RES), torch.full((2, f), 500.0)
    actions = torch.randint(5, (2, f), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(net(x, t, actions), plain(x, t, actions))  # zero-initialised: nothing added yet
    out = net(x, t, actions)
    out.square().mean().backward()
    assert net.action_tokens.weight.grad.abs().sum() > 0  # and it learns
    with torch.no_grad():
        net.action_tokens.weight.normal_(std=0.1)
        with_tokens = net(x, t, actions)
        weight = net.action_tokens.weight.clone()
        net.action_tokens.weight.zero_()
        without = net(x, t, actions)
        net.action_tokens.weight.copy_(weight)
        net.zero_new_inputs()  # --init zeroes it with the other new inputs
    assert not torch.allclose(with_tokens, without, atol=1e-5)  # trained, the map changes every frame's tokens
    assert float(net.action_tokens.weight.abs().sum()) == 0.0


# -- a chunk commits to its action ---------------------------------------------------------------------------


def _model(**overrides):
    config, spec = _setup(**overrides)
    torch.manual_seed(0)
    return FAMILY.world_model(FAMILY.build(config, spec).eval(), config, spec)


def _play(model, actions: list[int], seed: int = 3) -> list[torch.Tensor]:
    frames, context_actions = _context()
    state, out = model.reset(frames, context_actions, seed=seed), []
    for a in actions:
        state, frame = model.step(state, torch.full((2,), a))
        out.append(frame)
    return out


def test_a_chunk_is_generated_once_and_commits_to_the_action_at_its_first_step():
    model = _model(chunk=3)
    calls = []
    forward = model.net.forward
    model.net.forward = lambda *a: calls.append(1) or forward(*a)
    held = _play(model, [1, 1, 1, 1])
    assert len(calls) == 2 and model.chunks_generated == 2  # frames 1-3 from one chunk (1 step each), frame 4 a new one
    changed = _play(model, [1, 4, 2, 1])
    assert all(torch.equal(a, b) for a, b in zip(held[:3], changed[:3]))  # the chunk had already committed to 1
    assert not torch.equal(held[3], _play(model, [1, 1, 1, 4])[3])  # the next chunk starts from the newest action


def test_the_state_records_the_action_the_chunk_held():
    model = _model(chunk=3)
    frames, context_actions = _context()
    state = model.reset(frames, context_actions, seed=0)
    for a in (2, 4, 3):
        state, _ = model.step(state, torch.full((2,), a))
    assert state.actions[:, -DEBUG_K:].tolist() == [[2] * DEBUG_K] * 2  # what led into these frames in the model's world
    assert model.debug_state(state) == {"chunk": 3, "chunk_frames_left": 0, "held_action": 2, "sampling_steps": 1}


def test_replanning_on_change_answers_a_new_action_at_once():
    model = _model(chunk=3, replan_on_change="true")
    held, changed = _play(model, [1, 1, 1]), _play(model, [1, 4, 4])
    assert torch.equal(held[0], changed[0]) and not torch.equal(held[1], changed[1])
    assert model.chunks_generated == 1 + 2  # [1, 1, 1]: one chunk; [1, 4, 4]: a second one when 4 came


def test_the_sampling_steps_are_the_network_calls_per_chunk():
    model = _model(chunk=2)
    calls = []
    forward = model.net.forward
    model.net.forward = lambda *a: calls.append(1) or forward(*a)
    assert model.set_sampling_steps(4) == model.sampling_steps == 4
    _play(model, [1, 1])
    assert len(calls) == 4  # one chunk of 2 frames, 4 scheduler steps
    with pytest.raises(PlayworldError):
        model.set_sampling_steps(model.max_sampling_steps + 1)


# -- --init: a backbone saved with save_pretrained --------------------------------------------------------


def test_init_loads_every_backbone_weight_and_starts_as_the_backbone(tmp_path):
    config, spec = _setup()
    backbone = _backbone(config, spec, seed=7)
    backbone.save_pretrained(tmp_path / "pipeline" / "transformer")  # a pipeline folder works as well as the model folder
    torch.manual_seed(0)
    net = FAMILY.build(config, spec).eval()
    fresh = {k: v.clone() for k, v in net.transformer.state_dict().items()}
    loaded = FAMILY.init_from(net, config, spec, tmp_path / "pipeline")
    saved = backbone.state_dict()
    ours = {k: v for k, v in net.transformer.state_dict().items() if not k.startswith("caption_projection.")}  # (unused)
    assert loaded["tensors"] == len(ours) and set(ours) <= set(saved)
    assert all(torch.equal(ours[k], saved[k]) for k in ours)  # every weight is the saved one
    changed = [k for k in ours if not torch.equal(fresh[k], saved[k])]  # what a fresh initialisation would have made
    assert len(changed) > len(ours) // 2  # (the rest start at constants: norms, zero biases)
    f = spec.context + config.chunk
    x, t = torch.randn(2, f, 3, RES, RES), torch.tensor([50.0, 900.0])
    with torch.no_grad():
        torch.testing.assert_close(net(x, t[:, None].expand(2, f), torch.randint(5, (2, f))), _latte(backbone, x, t),
                                   rtol=1e-5, atol=1e-6)  # float rounding apart, as above


def test_init_errors_name_the_fix(tmp_path):
    config, spec = _setup()
    net = FAMILY.build(config, spec)
    # (a missing folder or config.json: tests/models/test_pretrained.py, for every family)
    other, _ = _setup(layers=2, heads=4)
    _backbone(other, spec).save_pretrained(tmp_path / "deeper")
    with pytest.raises(PlayworldError, match="num_layers: saved 2") as e:
        FAMILY.init_from(net, config, spec, tmp_path / "deeper")
    assert "--set model.layers=2" in e.value.fix and "--set model.heads=4" in e.value.fix
    _backbone(config, spec).save_pretrained(tmp_path / "pipe" / "transformer")
    (tmp_path / "pipe" / "scheduler").mkdir()
    (tmp_path / "pipe" / "scheduler" / "scheduler_config.json").write_text(json.dumps({"prediction_type": "epsilon"}))
    with pytest.raises(PlayworldError, match="another schedule") as e:
        FAMILY.init_from(net, config, spec, tmp_path / "pipe")
    assert "--set model.prediction_type=epsilon" in e.value.fix
    (tmp_path / "deeper" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(PlayworldError, match="diffusers could not load it"):
        FAMILY.init_from(FAMILY.build(other, spec), other, spec, tmp_path / "deeper")
    with pytest.raises(PlayworldError, match="cannot start from pretrained weights") as e:
        get_family("rssm").init_from(net, config, spec, tmp_path / "pipe")
    assert "clip, diffusion" in e.value.fix
    with pytest.raises(PlayworldError, match="not a UNet2DModel"):  # diffusion starts from a U-Net, not a Latte
        get_family("diffusion").init_from(net, config, spec, tmp_path / "pipe" / "transformer")


# -- a clip run: trained from a saved backbone, evaluated, played ----------------------------------------------


@pytest.fixture(scope="module")
def uniform(tmp_path_factory):
    return collect("physics/uniform", tmp_path_factory.mktemp("clip") / "uniform", episodes=4, resolution=32, progress=False)


@pytest.mark.slow
def test_train_init_fine_tunes_a_saved_backbone_and_the_run_evaluates(uniform, tmp_path, cli):
    config, _ = _setup()
    spec = WorldSpec(resolution=32, action_space=uniform.action_space, context=DEBUG_K)
    backbone = _backbone(config, spec, seed=5)
    backbone.save_pretrained(tmp_path / "backbone")
    train(tmp_path / "run", data=uniform.path, model="clip", preset="debug", steps=2, progress=False,
          sets=[f"train.init={tmp_path / 'backbone'}"])
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["init"] == str(tmp_path / "backbone")
    saved = backbone.state_dict()
    tuned = load_world_model(tmp_path / "run").net.transformer.state_dict()
    # two Adam steps at lr <= 1e-3 from the saved weights, where a fresh start would be ~0.1 away
    assert max(float((tuned[k] - saved[k]).abs().max()) for k in tuned if not k.startswith("caption_projection.")) < 5e-3

    # a trained run's backbone goes out the way it came in: save_pretrained, then --init (pretrain on video, then act)
    load_world_model(tmp_path / "run").net.transformer.save_pretrained(tmp_path / "exported")
    again = FAMILY.build(config, spec)
    FAMILY.init_from(again, config, spec, tmp_path / "exported")
    assert all(torch.equal(v, tuned[k]) for k, v in again.transformer.state_dict().items() if not k.startswith("caption_projection."))

    code, out, err = cli("eval", tmp_path / "run", "--data", uniform.path, "--suite", "physics", "--episodes", "2",
                         "--horizon", "8", "--no-baselines", "--threads", "1")
    assert code == 0, err
    physics = json.loads(next((tmp_path / "run" / "eval").glob("*.json")).read_text())["groups"]["physics"]
    assert physics["extra"]["model"]["clips"] >= 1 and physics["extra"]["model"]["horizon"] == 8  # 8 frames per test clip

    code, out, err = cli("train", "--data", uniform.path, "--model", "rssm", "--preset", "debug", "--steps", "1",
                         "--init", tmp_path / "backbone", "--out", tmp_path / "rssm")
    assert code != 0 and "cannot start from pretrained weights" in out + err


def test_without_diffusers_the_family_is_not_listed_and_asking_for_it_names_the_extra():
    code = (
        "import sys; sys.modules['diffusers'] = None\n"  # diffusers cannot be imported
        "from playworld.errors import PlayworldError\n"
        "from playworld.models import get_family, list_families\n"
        "assert 'clip' not in list_families() and 'diffusion' in list_families()\n"
        "try:\n    get_family('clip')\nexcept PlayworldError as e:\n    print(e.fix)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'playworld[video]'" in out
    assert "clip" in list_families()


# -- play in a browser ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    """A clip run trained for a few steps on a tiny explorer dataset, through the CLI as a user would."""
    root = tmp_path_factory.mktemp("clip-play")
    cli = [str(Path(sys.executable).with_name("playworld"))]
    subprocess.run(cli + ["collect", "--env", "explorer", "--episodes", "3", "--steps", "12", "--out", str(root / "data"),
                          "--resolution", "32"], check=True, capture_output=True)
    subprocess.run(cli + ["train", "--data", str(root / "data"), "--model", "clip", "--preset", "debug",
                          "--steps", "2", "--out", str(root / "run"), "--threads", "1"], check=True, capture_output=True)
    return root / "run"


@pytest.mark.slow
@pytest.mark.browser
def test_play_a_debug_clip_run_in_chromium(chromium, clip_run, tmp_path):
    from playwright.sync_api import sync_playwright  # only once `chromium` found Playwright installed

    target = load_target(str(clip_run), context_from=None)
    model, received, calls, per_step = target.model, [], [], []
    real_step, forward = model.step, model.net.forward
    model.net.forward = lambda *a: calls.append(1) or forward(*a)  # a spy on the network's evaluations

    def step(state, action):  # a spy on the real model: the actions that reached it, the network calls per frame
        received.append(int(action[0]))
        before = len(calls)
        out = real_step(state, action)
        per_step.append(len(calls) - before)
        return out

    model.step = step
    server = PlayServer(model, target.contexts, fps=15, title=target.title)
    with sync_playwright() as p, ServerThread(server.app, free_port()) as url:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(url)
        until(page, "window.pw && pw.frames > 4", 30_000)
        hello = page.evaluate("pw.hello")
        assert hello["spec"]["world"] == "explorer" and hello["sampling_steps"] == model.sampling_steps
        hold(page, "ArrowLeft", 500)
        assert 3 in received  # 'left' reached the model
        assert 0 < model.chunks_generated < len(received)  # chunks of 2: about one generation per two frames
        page.fill("#sampling-steps", "3")
        page.dispatch_event("#sampling-steps", "change")
        until(page, "pw.lastStatus && pw.lastStatus.sampling_steps === 3")
        assert model.sampling_steps == 3
        assert set(per_step) <= {0, 1, 3} and per_step.count(0) > 0  # frames handed out of a chunk cost nothing
        seen = len(per_step)
        for _ in range(100):  # the page plays on: wait for a chunk generated after the change
            if any(per_step[seen:]):
                break
            page.wait_for_timeout(100)
        assert [c for c in per_step[seen:] if c][:1] == [3]  # 3 network calls for the next chunk
        page.screenshot(path=str(tmp_path / "play-clip.png"))
        browser.close()
    server.close()


# -- the benches that measure it ---------------------------------------------------------------------------


@pytest.mark.slow
def test_the_chunk_length_bench_counts_the_flops_of_the_chunks_it_times():
    rows = clip_chunk_lengths("debug", chunks=(1, 3), repeats=1, frames=2)
    config = make_model_config(FAMILY, load_preset("debug"), {"chunk": "3"})
    spec = WorldSpec(resolution=RESOLUTION, action_space=ActionSpace.discrete(5), context=DEBUG_K)
    model = FAMILY.world_model(FAMILY.build(config, spec).eval(), config, spec)
    state = model.reset(torch.zeros(1, DEBUG_K, 3, RESOLUTION, RESOLUTION, dtype=torch.uint8), torch.zeros(1, DEBUG_K, dtype=torch.long))
    with FlopCounterMode(display=False) as counter:
        for _ in range(3):
            state, _ = model.step(state, torch.ones(1, dtype=torch.long))
    assert [r["chunk"] for r in rows] == [1, 3] and [r["frames_per_repeat"] for r in rows] == [2, 3]  # whole chunks
    assert rows[1]["gflop_per_frame"] == round(counter.get_total_flops() // 3 / 1e9, 4)
    assert [r["network_passes_per_frame"] for r in rows] == [config.steps / 1, round(config.steps / 3, 3)]
    assert rows[1]["gflop_per_frame"] < rows[0]["gflop_per_frame"] and all(r["frames_per_s"] > 0 for r in rows)


@pytest.mark.slow
def test_kang_clip_bench_scores_both_families_on_the_same_clips(tmp_path):
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, str(root / "bench" / "repro" / "kang_clip.py"), "--out", str(tmp_path), "--worlds", "uniform",
                          "--train-episodes", "10", "--ood-episodes", "10", "--steps", "2", "--preset", "debug", "--eval-clips", "2",
                          "--resolution", "32", "--threads", "1"], capture_output=True, text=True, timeout=300, cwd=root, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert out["bench"] == "kang_clip" and out["machine"]["threads"] == 1
    row = out["table"]["uniform"]
    for family in ("clip", "diffusion"):
        r, detail = row[family], out["results"]["uniform"][family]["detail"]
        assert r["id"] == round(detail["id"]["velocity_error"], 4) and r["floor_ood"] == round(detail["ood"]["floor"], 4)
        assert r["ood_over_id"] == round(detail["ood"]["velocity_error"] / detail["id"]["velocity_error"], 4)
        assert out["train"][f"uniform/{family}"]["steps"] == 2
    # the same clips, so the same parse floor for both; the clip model generates the rest of each clip as one chunk
    assert row["clip"]["floor_id"] == row["diffusion"]["floor_id"]
    assert "model.chunk=30" in out["train"]["uniform/clip"]["sets"]  # 32 frames - K=2 context
    assert out["results"]["uniform"]["clip"]["detail"]["id"]["clips"] == out["results"]["uniform"]["diffusion"]["detail"]["id"]["clips"]
