"""Start a clip network from a pretrained diffusers video transformer in a local folder (`--init PATH`).

PATH is what diffusers' `save_pretrained` writes: a model folder (config.json and
diffusion_pytorch_model.safetensors) of a LatteTransformer3DModel, or a pipeline folder whose
transformer/ subfolder is one (its scheduler/ is then checked against the run's schedule). Nothing
is downloaded: `from_pretrained` runs with local_files_only. The saved architecture must be the
run's (a mismatch is an error that names the --set options to pass); every transformer weight is
copied, and the inputs the backbone lacks (each frame's action and role) start at zero, so the
network at step 0 computes what the backbone computes (see network.py).
"""

from __future__ import annotations

from pathlib import Path

from diffusers.models.transformers.latte_transformer_3d import LatteTransformer3DModel

from playworld.errors import PlayworldError
from playworld.models.clip.config import ClipConfig
from playworld.models.clip.network import ClipDenoiser, transformer_config
from playworld.models.interface import WorldSpec
from playworld.models.pretrained import backbone_folder, check_schedule, load_pretrained, read_config, saved_schedule

BACKBONE = "LatteTransformer3DModel"
FIX = {  # saved config key -> how a run matches it
    "num_attention_heads": "--set model.heads={}", "attention_head_dim": "--set model.head_dim={}",
    "num_layers": "--set model.layers={}", "patch_size": "--set model.patch={}", "activation_fn": "--set model.activation={}",
    "caption_channels": "--set model.caption_channels={}", "sample_size": "train on {} px frames",
    "in_channels": "clip works on 3-channel pixels; a {}-channel (latent) backbone needs a VAE, which clip does not have",
    "out_channels": "clip predicts 3 channels; this backbone predicts {} (a learned-variance backbone is not supported)",
    "norm_type": "clip needs an adaLN-single backbone (norm_type ada_norm_single); this one has {}",
}
SCHEDULE = {  # saved scheduler key -> the clip option that must equal it
    "num_train_timesteps": "train_timesteps", "beta_schedule": "beta_schedule", "prediction_type": "prediction_type",
    "rescale_betas_zero_snr": "zero_snr",
}


def check_backbone(saved: dict, config: ClipConfig, spec: WorldSpec, where: Path) -> None:
    """PlayworldError naming every difference between a saved config.json and what this run builds."""
    wanted = transformer_config(config, spec)
    if not config.caption_channels:  # no cross-attention: the saved caption projection is left out, whatever its width
        wanted.pop("caption_channels")
    keys = [key for key in FIX if key in wanted]
    diffs = [key for key in keys if saved.get(key) != wanted[key]]
    cross = saved.get("cross_attention_dim") is not None
    if cross != bool(config.caption_channels):
        diffs.append("cross_attention_dim")
    if diffs:
        said = "; ".join(f"{k}: saved {saved.get(k)!r}, this run {wanted.get(k)!r}" for k in diffs)
        fixes = [FIX[k].format(saved.get(k)) for k in diffs if k in FIX]
        if "cross_attention_dim" in diffs:
            fixes.append(f"--set model.caption_channels={saved.get('caption_channels')}" if cross else "--set model.caption_channels=0")
        raise PlayworldError(f"--init {where} does not fit this run ({said})", "; ".join(dict.fromkeys(fixes)))


def load_backbone(net: ClipDenoiser, path: Path, config: ClipConfig, spec: WorldSpec) -> dict:
    """Copy the backbone in `path` into `net` and zero its new inputs; returns what was loaded."""
    folder = backbone_folder(path, "transformer", BACKBONE)
    check_backbone(read_config(folder, BACKBONE, "clip"), config, spec, folder)
    check_schedule(saved_schedule(Path(path)), Path(path), SCHEDULE, config)
    backbone = load_pretrained(LatteTransformer3DModel, folder)
    unused = () if net.caption is not None else ("caption_projection.",)  # no cross-attention: the caption is never read
    state = {k: v for k, v in backbone.state_dict().items() if not k.startswith(unused)}
    missing, unexpected = net.transformer.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(unused)]
    if missing or unexpected:
        raise PlayworldError(f"--init {folder}: the weights do not fit (missing {missing[:4]}, unexpected {unexpected[:4]})",
                             "save the model again with the diffusers version installed here")
    net.zero_new_inputs()
    return {"folder": str(folder), "tensors": len(state), "parameters": sum(v.numel() for v in state.values())}
