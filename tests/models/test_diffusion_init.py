"""The diffusion family on diffusers' UNet2DModel (backbone 'diffusers') and started from one saved with
save_pretrained (--init): the DDPM parameterisations are EDM coefficients, sigma maps onto the DDPM timesteps,
the loaded network computes the pretrained model's denoised estimate at step 0, every mismatch names its fix,
and a run fine-tunes from the saved weights, then evaluates and plays back.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from playworld.data.collect import collect
from playworld.errors import PlayworldError
from playworld.models import get_family
from playworld.models.diffusion.config import DiffusionConfig
from playworld.models.diffusion.network import coefficients
from playworld.models.interface import WorldSpec
from playworld.runs.load import load_world_model
from playworld.runs.presets import load_preset, make_model_config, resolve_context
from playworld.spaces import ActionSpace
from playworld.train.loop import train

diffusers = pytest.importorskip("diffusers", reason="the diffusers backbone needs the video extra: pip install -e '.[video]'")
from diffusers import DDPMScheduler, UNet2DModel

from playworld.models.diffusion.backbone import ddpm_log_sigmas, sigma_to_timestep

FAMILY = get_family("diffusion")
DEBUG_K = resolve_context(load_preset("debug"))
RES = 16
# a DDPM-CIFAR-10-like U-Net at the debug preset's size: its non-default arguments are those google/ddpm-cifar10-32 has
UNET = {"block_out_channels": (8, 16), "layers_per_block": 1, "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D"), "norm_num_groups": 4, "attention_head_dim": None,
        "flip_sin_to_cos": False, "freq_shift": 1, "norm_eps": 1e-6, "downsample_padding": 0}
OPTIONS = {"attention_head_dim": None, "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "norm_eps": 1e-6}
SETS = {"backbone": "diffusers", "residual": "false", "prediction": "epsilon", "unet_options": json.dumps(OPTIONS)}


def _pretrained(seed: int = 1, **changes) -> UNet2DModel:
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=RES, **{**UNET, **changes}).eval()


def _setup(**sets):
    config = make_model_config(FAMILY, load_preset("debug"), {**SETS, **{k: str(v) for k, v in sets.items()}})
    return config, WorldSpec(resolution=RES, action_space=ActionSpace.discrete(5), context=DEBUG_K)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_each_ddpm_parameterisation_gives_back_the_clean_frame_from_its_own_target(prediction):
    """D = c_skip x + c_out F with F the true epsilon / v / x0 of x = x0 + sigma n is x0 exactly."""
    g = torch.Generator().manual_seed(0)
    x0, n = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    sigma = torch.tensor([0.01, 0.5, 3.0, 80.0])
    s = sigma.view(-1, 1, 1, 1)
    alpha, sd = 1 / (s**2 + 1).sqrt(), s / (s**2 + 1).sqrt()  # DDPM's sqrt(alphabar) and sqrt(1 - alphabar)
    target = {"epsilon": n, "v_prediction": alpha * n - sd * x0, "sample": x0}[prediction]
    c_skip, c_out, c_in, _ = coefficients(prediction, sigma, 0.5)
    torch.testing.assert_close(c_in * (x0 + s * n), alpha * x0 + sd * n)  # the DDPM sample of the same SNR
    torch.testing.assert_close(c_skip * (x0 + s * n) + c_out * target, x0, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(coefficients("edm", sigma, 0.5)[1], c_out)


def test_sigma_maps_onto_the_ddpm_timesteps_exactly_at_the_schedules_levels():
    config = DiffusionConfig(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    log_sigmas = ddpm_log_sigmas(config)
    alphabar = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).alphas_cumprod.double()
    t = torch.tensor([0, 1, 250, 998, 999])
    sigma = ((1 - alphabar[t]) / alphabar[t]).sqrt()
    torch.testing.assert_close(sigma_to_timestep(sigma, log_sigmas), t.float())
    between = sigma_to_timestep((sigma[2] * sigma[2] * 1.0001).sqrt()[None], log_sigmas)  # a little above t=250
    assert 250 < between.item() < 251
    outside = sigma_to_timestep(torch.tensor([1e-6, 1e6]), log_sigmas)
    assert outside.tolist() == [0.0, 999.0]  # clamped to the schedule


def test_init_loads_every_weight_and_starts_as_the_pretrained_model(tmp_path):
    config, spec = _setup()
    pretrained = _pretrained(seed=7)
    pretrained.save_pretrained(tmp_path / "pipeline" / "unet")  # a pipeline folder works as well as the model folder
    torch.manual_seed(0)
    net = FAMILY.build(config, spec).eval()
    fresh = {k: v.clone() for k, v in net.unet.model.state_dict().items()}
    loaded = FAMILY.init_from(net, config, spec, tmp_path / "pipeline")
    saved, ours = pretrained.state_dict(), net.unet.model.state_dict()
    assert loaded["tensors"] == len(saved) == len(ours) and loaded["side_channels"] == DEBUG_K * 3
    w = ours["conv_in.weight"]
    assert torch.equal(w[:, :3], saved["conv_in.weight"]) and not w[:, 3:].any()  # the context channels start at zero
    assert all(torch.equal(ours[k], saved[k]) for k in saved if k != "conv_in.weight")
    changed = [k for k in saved if k != "conv_in.weight" and not torch.equal(fresh[k], saved[k])]
    assert len(changed) > len(saved) // 2  # a fresh initialisation differs (the rest start at constants: norms, biases)

    # D(x; sigma) = x - sigma * eps(x / sqrt(sigma^2 + 1), t(sigma)): the pretrained model's estimate, whatever
    # the context, actions and context noise
    g = torch.Generator().manual_seed(3)
    b = 3
    x = torch.randn(b, 3, RES, RES, generator=g) * 2
    context = torch.rand(b, DEBUG_K, 3, RES, RES, generator=g) * 2 - 1
    actions = torch.randint(5, (b, DEBUG_K + 1), generator=g)
    sigma = torch.tensor([0.02, 1.0, 20.0])
    log_sigmas = ddpm_log_sigmas(config)
    with torch.no_grad():
        base, inside = net.origin(context, actions, context[:, -1])
        c = net.condition(context, actions, torch.tensor([0.0, 0.05, 0.1]), base, inside)
        s = sigma.view(-1, 1, 1, 1)
        want = x - s * pretrained(x / (s**2 + 1).sqrt(), sigma_to_timestep(sigma, log_sigmas)).sample
        torch.testing.assert_close(net.denoise(x, sigma, c), want, rtol=1e-5, atol=1e-4)  # float rounding apart


def test_the_diffusers_backbone_trains_from_scratch_and_conditions_on_the_context(tmp_path):
    """Without --init the same network learns: its loss falls, and its output depends on the context and actions
    (conv_in's context channels and the condition projection receive gradients from the first step)."""
    config, spec = _setup(residual="true", prediction="edm")
    torch.manual_seed(0)
    net = FAMILY.build(config, spec)
    g = torch.Generator().manual_seed(0)
    context = torch.rand(8, DEBUG_K, 3, RES, RES, generator=g) * 2 - 1
    actions = torch.randint(5, (8, DEBUG_K + 1), generator=g)
    target = context[:, -1].roll(1, dims=-1)  # the next frame: the newest moved by one pixel
    x0 = target - context[:, -1]
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for step in range(80):
        sigma = torch.full((8,), 0.3)
        noise = torch.randn(x0.shape, generator=g)
        out = net(x0 + sigma.view(-1, 1, 1, 1) * noise, sigma, context, actions, torch.zeros(8), context[:, -1])
        c_skip, c_out, _, _ = coefficients("edm", sigma, config.sigma_data)
        loss = torch.nn.functional.mse_loss(out, (x0 - c_skip * (x0 + sigma.view(-1, 1, 1, 1) * noise)) / c_out)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            assert net.unet.model.conv_in.weight.grad[:, 3:].abs().sum() > 0 and net.cond_mlp[-1].weight.grad.abs().sum() > 0
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    with torch.no_grad():
        a = net(torch.zeros_like(x0), torch.full((8,), 0.3), context, actions, torch.zeros(8), context[:, -1])
        b = net(torch.zeros_like(x0), torch.full((8,), 0.3), context.flip(0), (actions + 1) % 5, torch.zeros(8), context[:, -1])
    assert not torch.allclose(a, b, atol=1e-4)


def test_init_errors_name_the_fix(tmp_path):
    config, spec = _setup()
    net = FAMILY.build(config, spec)
    # (a missing folder or config.json: tests/models/test_pretrained.py, for every family)

    # a run built otherwise: one error lists every --set the saved model needs
    _pretrained(block_out_channels=(8, 16, 16), down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3,
                layers_per_block=2, norm_num_groups=2, freq_shift=0).save_pretrained(tmp_path / "other")
    plain = make_model_config(FAMILY, load_preset("debug"), {})
    with pytest.raises(PlayworldError, match="does not fit this run") as e:
        FAMILY.init_from(FAMILY.build(plain, spec), plain, spec, tmp_path / "other")
    want = ("--set model.backbone=diffusers --set model.residual=false --set model.prediction=epsilon "
            "--set model.channels=8,16,16 --set model.depths=2,2,2 --set model.attention=false,false,false "
            "--set model.groups=2 --set model.mid_attention=true "
            """--set 'model.unet_options={"attention_head_dim": null, "downsample_padding": 0, "flip_sin_to_cos": false, "norm_eps": 1e-06}'""")
    assert e.value.fix == want
    fixed = make_model_config(FAMILY, load_preset("debug"), {
        "backbone": "diffusers", "residual": "false", "prediction": "epsilon", "channels": "8,16,16", "depths": "2,2,2",
        "attention": "false,false,false", "groups": "2", "mid_attention": "true",
        "unet_options": '{"attention_head_dim": null, "downsample_padding": 0, "flip_sin_to_cos": false, "norm_eps": 1e-06}'})
    assert FAMILY.init_from(FAMILY.build(fixed, spec), fixed, spec, tmp_path / "other")["tensors"] > 0  # the fix fits

    # a pipeline's scheduler: its prediction and betas must be the run's
    _pretrained().save_pretrained(tmp_path / "pipe" / "unet")
    (tmp_path / "pipe" / "scheduler").mkdir()
    scheduler = {"prediction_type": "v_prediction", "beta_schedule": "linear", "num_train_timesteps": 1000}
    (tmp_path / "pipe" / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    with pytest.raises(PlayworldError, match="another schedule") as e:
        FAMILY.init_from(net, config, spec, tmp_path / "pipe")
    assert e.value.fix == "--set model.prediction=v_prediction"
    edm, _ = _setup(prediction="edm")
    with pytest.raises(PlayworldError, match="does not fit") as e:  # the scheduler's prediction is the one suggested
        FAMILY.init_from(FAMILY.build(edm, spec), edm, spec, tmp_path / "pipe")
    assert e.value.fix == "--set model.prediction=v_prediction"

    # models this family cannot start from
    for name, changes, match in [
        ("latent", {"in_channels": 4, "out_channels": 4}, "4-to-4-channel"),
        ("resnet", {"down_block_types": ("ResnetDownsampleBlock2D", "AttnDownBlock2D"),
                    "up_block_types": ("AttnUpBlock2D", "ResnetUpsampleBlock2D")}, "not supported"),
        ("unmirrored", {"up_block_types": ("UpBlock2D", "AttnUpBlock2D")}, "not supported"),
        ("fourier", {"time_embedding_type": "fourier"}, "time_embedding_type"),
        ("classes", {"num_class_embeds": 10}, "class-conditional"),
    ]:
        _pretrained(**changes).save_pretrained(tmp_path / name)
        with pytest.raises(PlayworldError, match=match):
            FAMILY.init_from(net, config, spec, tmp_path / name)
    (tmp_path / "other" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(PlayworldError, match="diffusers could not load it"):
        FAMILY.init_from(FAMILY.build(fixed, spec), fixed, spec, tmp_path / "other")


def test_bad_backbone_options_are_clear_errors():
    with pytest.raises(PlayworldError, match="not JSON") as e:
        _setup(unet_options="{freq_shift: 1}")
    assert "--set 'model.unet_options=" in e.value.fix
    with pytest.raises(PlayworldError, match="full resolution") as e:
        _setup(patch=2)
    assert e.value.fix == "add --set model.patch=1"
    with pytest.raises(PlayworldError, match="configures the diffusers backbone"):
        _setup(backbone="playworld")
    with pytest.raises(PlayworldError, match="unknown prediction"):
        _setup(prediction="x0")
    config, spec = _setup(unet_options='{"frq_shift": 1}')
    with pytest.raises(PlayworldError, match="no argument.*frq_shift"):
        FAMILY.build(config, spec)
    config, spec = _setup(unet_options='{"block_out_channels": [8, 16]}')
    with pytest.raises(PlayworldError, match="run's own options") as e:
        FAMILY.build(config, spec)
    assert "model.channels" in e.value.fix
    config, spec = _setup(depths="1,2")
    with pytest.raises(PlayworldError, match="one depth for every level") as e:
        FAMILY.build(config, spec)
    assert e.value.fix == "--set model.depths=1,1"


@pytest.mark.slow
def test_train_init_fine_tunes_a_saved_unet_and_the_run_evaluates_and_plays(tmp_path, cli):
    data = collect("explorer", tmp_path / "explorer", episodes=3, steps=24, resolution=32, progress=False)
    pretrained = _pretrained(seed=5)
    pretrained.save_pretrained(tmp_path / "unet")
    sets = [f"model.{k}={v}" for k, v in SETS.items()] + [f"train.init={tmp_path / 'unet'}"]
    train(tmp_path / "run", data=data.path, model="diffusion", preset="debug", steps=2, progress=False, sets=sets)
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["train"]["init"] == str(tmp_path / "unet") and config["model"]["diffusion"]["unet_options"] == OPTIONS
    model = load_world_model(tmp_path / "run")
    saved, tuned = pretrained.state_dict(), model.net.unet.model.state_dict()
    # two Adam steps at lr <= 1e-3 from the saved weights, where a fresh start would be ~0.1 away
    assert max(float((tuned[k] - saved[k]).abs().max()) for k in saved if k != "conv_in.weight") < 5e-3
    episode = data.load_episode(data.episode_ids()[0])
    frames = torch.as_tensor(episode.frames[:DEBUG_K]).permute(0, 3, 1, 2)[None]  # (1, K, 3, H, W)
    actions = torch.as_tensor(episode.actions[:DEBUG_K])[None]
    _, frame = model.step(model.reset(frames, actions, seed=0), actions[:, -1])
    assert frame.shape == (1, 3, 32, 32) and frame.dtype == torch.uint8

    code, _, err = cli("eval", tmp_path / "run", "--data", data.path, "--suite", "fidelity", "--episodes", "2",
                         "--horizon", "4", "--no-baselines", "--threads", "1")
    assert code == 0, err
