"""Start a diffusion network from a pretrained diffusers UNet2DModel in a local folder (`--init PATH`).

PATH is what `save_pretrained` writes: a UNet2DModel's folder, or a pipeline folder (a DDPMPipeline's)
whose unet/ subfolder is one; a pipeline's scheduler/ is checked against the run's DDPM schedule and
prediction. The run must be built to match (backbone diffusers, residual false: a pretrained image
model predicts frames, not changes; the saved architecture; the saved prediction); every mismatch is
one error naming the --set options to pass. Every weight is copied; conv_in's new input channels (the
context frames) and the condition projection (actions, context noise) start at zero, so at step 0 the
Denoiser computes exactly the pretrained model's denoised estimate (network.py, backbone.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import UNet2DModel

from playworld.errors import PlayworldError
from playworld.models.diffusion.backbone import SET_BY_OPTIONS, UNSUPPORTED, unet_arguments
from playworld.models.diffusion.config import DiffusionConfig
from playworld.models.diffusion.network import Denoiser
from playworld.models.interface import WorldSpec
from playworld.models.pretrained import backbone_folder, check_schedule, load_pretrained, read_config, saved_schedule

BACKBONE = "UNet2DModel"
SCHEDULE = {  # saved scheduler key -> the diffusion option that must equal it
    "num_train_timesteps": "train_timesteps", "beta_schedule": "beta_schedule", "beta_start": "beta_start",
    "beta_end": "beta_end", "prediction_type": "prediction",
}
BLOCKS = {"DownBlock2D": False, "AttnDownBlock2D": True}


def _same(a, b) -> bool:
    """Config values equal once tuples and lists are alike (JSON keeps lists)."""
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def required_sets(saved: dict, config: DiffusionConfig, prediction: str) -> list[str]:
    """The --set options that make this run build the saved UNet2DModel (empty: it does already); `prediction`:
    what the pretrained model predicts, if known (a pipeline's scheduler says), else diffusers' default."""
    defaults = unet_arguments()
    args = {**defaults, **saved}  # every argument the saved model was built with
    fixes = []
    if config.backbone != "diffusers":
        fixes.append("--set model.backbone=diffusers")
    if int(config.patch) != 1:
        fixes.append("--set model.patch=1")
    if config.residual:
        fixes.append("--set model.residual=false")
    if config.prediction == "edm":
        fixes.append(f"--set model.prediction={prediction}")
    levels, attention = len(args["down_block_types"]), [BLOCKS[b] for b in args["down_block_types"]]
    depth, groups, mid = args["layers_per_block"], int(args["norm_num_groups"]), bool(args["add_attention"])
    if not _same(list(args["block_out_channels"]), list(config.channels)):
        fixes.append(f"--set model.channels={','.join(map(str, args['block_out_channels']))}")
    if not _same([depth] * levels, list(config.depths)):
        fixes.append(f"--set model.depths={','.join([str(depth)] * levels)}")
    if not _same(attention, list(config.attention)):
        fixes.append(f"--set model.attention={','.join(str(a).lower() for a in attention)}")
    if groups != int(config.groups):
        fixes.append(f"--set model.groups={groups}")
    # the bottleneck attends as the coarsest level once the fixes above hold, unless mid_attention says otherwise
    if mid != (attention[-1] if config.mid_attention is None else bool(config.mid_attention)):
        fixes.append(f"--set model.mid_attention={str(mid).lower()}")
    wanted = {k: v for k, v in saved.items()
              if k in defaults and k not in SET_BY_OPTIONS and k not in UNSUPPORTED and not _same(v, defaults[k])}
    if not _same(wanted, {k: v for k, v in config.unet_options.items() if not _same(v, defaults[k])}):
        fixes.append(f"--set 'model.unet_options={json.dumps(wanted)}'")
    return fixes


def check_unet(saved: dict, config: DiffusionConfig, spec: WorldSpec, where: Path, prediction: str = "epsilon") -> None:
    """PlayworldError for a saved UNet2DModel this family cannot start from, or one this run does not build."""
    args = {**unet_arguments(), **saved}
    down, up = list(args["down_block_types"]), list(args["up_block_types"])
    mirrored = [b.replace("Down", "Up") for b in reversed(down)]
    if any(b not in BLOCKS for b in down) or up != mirrored:
        raise PlayworldError(f"--init {where}: blocks {down} / {up} are not supported",
                             "the diffusion family builds DownBlock2D / AttnDownBlock2D levels and their mirrored up blocks")
    for key, (value, why) in UNSUPPORTED.items():
        if args[key] != value:
            raise PlayworldError(f"--init {where}: {key} {args[key]!r} is not supported ({why})", f"start from a model with {key} {value!r}")
    if args["in_channels"] != spec.channels or args["out_channels"] != spec.channels:
        raise PlayworldError(
            f"--init {where}: a {args['in_channels']}-to-{args['out_channels']}-channel model; the diffusion family "
            f"denoises {spec.channels}-channel frames", "start from a pixel-space model (a latent one needs a VAE, which this family does not have)")
    if args["class_embed_type"] is not None or args["num_class_embeds"] is not None:
        raise PlayworldError(f"--init {where}: a class-conditional model", "start from an unconditional UNet2DModel")
    fixes = required_sets(saved, config, prediction)
    if fixes:
        raise PlayworldError(f"--init {where} does not fit this run", " ".join(fixes))


def load_backbone(net: Denoiser, path: Path, config: DiffusionConfig, spec: WorldSpec) -> dict:
    """Copy the UNet2DModel in `path` into `net` (new input channels and condition at zero); returns what was loaded."""
    folder = backbone_folder(path, "unet", BACKBONE)
    saved = read_config(folder, BACKBONE, "diffusion")
    schedule = saved_schedule(Path(path))  # a pipeline's scheduler config, {} for a model folder
    check_unet(saved, config, spec, folder, schedule.get("prediction_type", "epsilon"))
    check_schedule(schedule, Path(path), SCHEDULE, config)
    c_side = net.unet.c_side
    state = load_pretrained(UNet2DModel, folder).state_dict()
    ours = net.unet.model.state_dict()
    weight = state["conv_in.weight"]  # (C0, 3, k, k) -> (C0, 3 + C_side, k, k): the side channels at zero
    state["conv_in.weight"] = torch.cat([weight, weight.new_zeros(weight.shape[0], c_side, *weight.shape[2:])], dim=1)
    unexpected, missing = sorted(set(state) - set(ours)), sorted(set(ours) - set(state))
    wrong = [k for k in set(state) & set(ours) if state[k].shape != ours[k].shape]
    if missing or unexpected or wrong:
        raise PlayworldError(f"--init {folder}: the weights do not fit (missing {missing[:4]}, unexpected {unexpected[:4]}, "
                             f"other shapes {wrong[:4]})", "save the model again with the diffusers version installed here")
    net.unet.model.load_state_dict(state)
    torch.nn.init.zeros_(net.cond_mlp[-1].weight)  # (built at zero; a restart from a trained net zeroes it again)
    torch.nn.init.zeros_(net.cond_mlp[-1].bias)
    return {"folder": str(folder), "tensors": len(state), "parameters": sum(v.numel() for v in state.values()),
            "side_channels": c_side}
