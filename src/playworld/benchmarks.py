"""Generation speed benchmarks: frames/s of the `small` diffusion model against a DIAMOND-size reference,
and of the `small` clip model (chunks of T frames denoised jointly) beside them.

Everything is measured in one process, interleaved, so that the figures (and above all their
ratio) are comparable on a shared or throttled machine:

- generation frames/s at 64x64, batch 1, the preset's default sampler, `threads` CPU threads,
  fp32 and bf16 (autocast); the median over `repeats` runs of `frames` consecutive steps;
- FLOPs per frame (torch.utils.flop_counter), hence achieved GFLOP/s, divided by the GFLOP/s of a
  plain square matmul of the same dtype measured in the same run (how well the network uses the
  machine, independent of how fast the machine is);
- the same for a reference denoiser the size of DIAMOND's Atari one (4 levels of 64 channels, 2
  blocks each, full-resolution stem, attention in the mid block only, about 4.5M parameters, 3 Euler
  steps), and small/reference;
- the same for the preset's clip model (when diffusers is installed), timed over whole chunks (the
  frames of a repeat are rounded up to a multiple of its chunk, so every repeat pays for the chunks it
  hands out), and its per-frame cost as the chunk length T grows (`clip_chunk_lengths`: the network
  runs on K + T frames per step, so a frame costs steps * cost(K + T) / T).

`playworld bench` and bench/speed/generation.py print the result as JSON, with each model's sampling
steps, stem patch and attention read from the network that was timed (`describe`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import statistics
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from playworld.compute import bf16_slowdown, native_bf16
from playworld.models.interface import WorldSpec
from playworld.models.registry import get_family, list_families
from playworld.runs.presets import load_preset, make_model_config, resolve_context
from playworld.spaces import ActionSpace

RESOLUTION = 64
# DIAMOND's Atari denoiser (Alonso et al. 2024): channels [64]*4, depths [2]*4, cond 256, 4 context
# frames, 3 Euler steps, a full-resolution stem; self-attention only in the mid (bottleneck) block.
REFERENCE_CONTEXT = 4
REFERENCE = dict(
    channels=(64, 64, 64, 64), depths=(2, 2, 2, 2), attention=(False, False, False, False), mid_attention=True,
    patch=1, cond_dim=256, action_dim=64, groups=32, sampler="euler", steps=3,
)
CHUNK_LENGTHS = (1, 2, 4, 8, 16)
"""the clip chunk lengths T whose per-frame cost is measured"""


def _precision(dtype: str):
    if dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def matmul_gflops(dtype: str = "fp32", size: int = 1024, iters: int = 10) -> float:
    """GFLOP/s of a (size x size) @ (size x size) matmul in `dtype`, one timed burst."""
    tdtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    a, b = torch.randn(size, size, dtype=tdtype), torch.randn(size, size, dtype=tdtype)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(iters):
        a @ b
    return 2 * size**3 * iters / (time.perf_counter() - start) / 1e9


class _Generator:
    """One world model ready to generate: a random-weight network (speed does not depend on weights)."""

    def __init__(self, overrides: dict[str, Any] | None, preset: str | None, action_space: ActionSpace, seed: int = 0,
                 context: int | None = None, family: str = "diffusion", sets: dict[str, str] | None = None):
        self.family = family
        family = get_family(family)
        p = load_preset(preset) if preset else None
        config = make_model_config(family, p, sets)  # sets: command-line strings (`playworld bench --set`)
        if overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        spec = WorldSpec(resolution=RESOLUTION, action_space=action_space, context=context or resolve_context(p))
        torch.manual_seed(seed)
        self.net = family.build(config, spec).eval()
        self.params = sum(p.numel() for p in self.net.parameters())
        self.model = family.world_model(self.net, config, spec)
        k = spec.context
        frames = torch.randint(0, 256, (1, k, 3, RESOLUTION, RESOLUTION), dtype=torch.uint8)
        self.state = self.model.reset(frames, torch.zeros(1, k, dtype=torch.long), seed=seed)
        self.action = torch.ones(1, dtype=torch.long)
        self.chunk = int(getattr(config, "chunk", 1))  # frames per network pass (clip: a chunk; diffusion: 1)

    def step(self, dtype: str) -> None:
        with _precision(dtype):
            self.state, _ = self.model.step(self.state, self.action)

    def whole_chunks(self, frames: int) -> int:
        """`frames` rounded up to a multiple of the chunk, so a timing pays for every chunk it uses."""
        return -(-frames // self.chunk) * self.chunk

    def flops_per_frame(self, dtype: str) -> int:
        with FlopCounterMode(display=False) as counter:
            for _ in range(self.chunk):  # one whole chunk (from a chunk boundary: the steps so far are whole chunks)
                self.step(dtype)
        return int(counter.get_total_flops()) // self.chunk

    def time_frames(self, dtype: str, frames: int) -> float:
        """Frames/s over `frames` consecutive generated frames (rounded up to whole chunks)."""
        frames = self.whole_chunks(frames)
        start = time.perf_counter()
        for _ in range(frames):
            self.step(dtype)
        return frames / (time.perf_counter() - start)


def describe(gen: _Generator) -> dict[str, Any]:
    """What decides a model's cost per frame, read from its config and its built network. Diffusion: sampler
    and steps, stem patch (hence the resolution the U-Net runs at), widths, and where it attends. Clip:
    scheduler and steps, chunk, context, tokens per frame, width and layers of the transformer."""
    if gen.family == "clip":
        tr, c = gen.net.transformer.config, gen.config
        return {"scheduler": c.scheduler, "steps": int(c.steps), "chunk": int(c.chunk), "context": gen.model.spec.context,
                "tokens_per_frame": (RESOLUTION // tr.patch_size) ** 2, "width": tr.num_attention_heads * tr.attention_head_dim,
                "layers": tr.num_layers}
    c = gen.config
    out = {"sampler": c.sampler, "steps": int(c.steps), "channels": list(c.channels), "backbone": c.backbone,
           "transport": int(c.transport)}
    if c.backbone == "diffusers":  # UNet2DModel: full resolution, attention as configured
        mid = c.attention[-1] if c.mid_attention is None else bool(c.mid_attention)
        return {**out, "patch": 1, "unet_resolution": RESOLUTION, "level_attention": list(c.attention), "mid_attention": mid}
    unet = gen.net.unet
    return {
        **out, "patch": int(unet.patch), "unet_resolution": RESOLUTION // int(unet.patch),
        "level_attention": [any(b.attn is not None for b in blocks) for blocks in unet.down],
        "mid_attention": unet.mid[0].attn is not None,
    }


def _comparison(small: dict[str, Any], reference: dict[str, Any]) -> str:
    """One sentence the docs can quote: steps and stem of both models."""
    def side(name: str, e: dict[str, Any]) -> str:
        stem = "full resolution" if e["patch"] == 1 else f"a patch-{e['patch']} stem ({e['unet_resolution']} px)"
        return f"{name} {e['steps']} {e['sampler']} step{'s' if e['steps'] != 1 else ''} with {stem}"
    return f"{side('small', small)}; {side('the reference', reference)}"


def generation_benchmark(
    threads: int = 2, repeats: int = 5, frames: int = 20, dtypes: tuple[str, ...] = ("fp32", "bf16"),
    preset: str = "small", progress=None, sets: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The figures described in the module docstring, as a JSON-ready dict. bf16 is skipped (with a note)
    on a CPU that only emulates it, where one step takes tens of times longer than in fp32. `sets`: diffusion
    options ({"transport": "4"}) the preset's diffusion model is built with, to time a configuration before
    training it."""
    torch.set_num_threads(int(threads))
    skipped = {}
    if "bf16" in dtypes and native_bf16() is False:
        dtypes = tuple(d for d in dtypes if d != "bf16")
        skipped["bf16"] = f"emulated on this CPU (no AVX-512 BF16 / AMX): {bf16_slowdown():.0f}x slower than fp32 in a matmul"
    space = ActionSpace.discrete(5)
    models = {"small": _Generator(None, preset, space, sets=sets), "reference": _Generator(REFERENCE, None, space, context=REFERENCE_CONTEXT)}
    if "clip" in list_families():
        models["clip"] = _Generator(None, preset, space, family="clip")
    else:
        skipped["clip"] = "diffusers is not installed (pip install 'playworld[video]')"
    fps: dict[tuple[str, str], list[float]] = {(m, d): [] for m in models for d in dtypes}
    mm: dict[str, list[float]] = {d: [] for d in dtypes}
    flops = {(m, d): g.flops_per_frame(d) for m, g in models.items() for d in dtypes}
    for name, gen in models.items():  # warm-up: oneDNN primitive creation, allocator
        for d in dtypes:
            gen.time_frames(d, 3)
    task = progress.add_task("benchmarking generation", total=repeats) if progress else None
    for _ in range(repeats):  # interleaved, so load changes hit every figure alike
        for d in dtypes:
            mm[d].append(matmul_gflops(d))
            for name, gen in models.items():
                fps[(name, d)].append(gen.time_frames(d, frames))
        if progress:
            progress.advance(task)

    matmul = {d: statistics.median(v) for d, v in mm.items()}
    out: dict[str, Any] = {
        "setup": {
            "resolution": RESOLUTION, "batch": 1, "threads": torch.get_num_threads(), "repeats": repeats,
            "frames_per_repeat": frames, "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "native_bf16": native_bf16(), "skipped": skipped, "sets": dict(sets or {}),
        },
        "matmul_gflops": {d: round(v, 2) for d, v in matmul.items()},
    }
    for name, gen in models.items():
        entry: dict[str, Any] = {"params_millions": round(gen.params / 1e6, 3), **describe(gen)}
        for d in dtypes:
            f = statistics.median(fps[(name, d)])
            achieved = flops[(name, d)] * f / 1e9
            entry[d] = {
                "frames_per_s": round(f, 2), "ms_per_frame": round(1000 / f, 2),
                "gflop_per_frame": round(flops[(name, d)] / 1e9, 4), "achieved_gflops": round(achieved, 2),
                "fraction_of_matmul": round(achieved / matmul[d], 4),
                "frames_per_s_all_repeats": [round(x, 2) for x in fps[(name, d)]],
            }
        out[name] = entry
    out["small_vs_reference"] = _comparison(out["small"], out["reference"])
    out["ratio_small_over_reference"] = {
        d: round(out["small"][d]["frames_per_s"] / out["reference"][d]["frames_per_s"], 2) for d in dtypes
    }
    if "clip" in models:
        out["clip"]["frames_per_repeat"] = models["clip"].whole_chunks(frames)
        out["ratio_clip_over_small"] = {
            d: round(out["clip"][d]["frames_per_s"] / out["small"][d]["frames_per_s"], 2) for d in dtypes
        }
        out["clip_chunk_lengths"] = clip_chunk_lengths(preset, repeats=repeats, frames=frames)
    return out


def clip_chunk_lengths(preset: str = "small", chunks: tuple[int, ...] = CHUNK_LENGTHS, repeats: int = 3,
                       frames: int = 16) -> list[dict[str, Any]]:
    """The preset's clip model (fp32, batch 1) at each chunk length T: ms and GFLOP per frame, and network
    passes per frame (steps / T). Each repeat generates at least `frames` frames in whole chunks."""
    space, rows = ActionSpace.discrete(5), []
    for t in chunks:
        gen = _Generator({"chunk": int(t)}, preset, space, family="clip")
        gen.time_frames("fp32", 1)  # warm-up
        flops = gen.flops_per_frame("fp32")
        fps = statistics.median(gen.time_frames("fp32", frames) for _ in range(repeats))
        rows.append({"chunk": int(t), "frames_per_s": round(fps, 2), "ms_per_frame": round(1000 / fps, 2),
                     "gflop_per_frame": round(flops / 1e9, 4), "network_passes_per_frame": round(gen.config.steps / t, 3),
                     "frames_per_repeat": gen.whole_chunks(frames)})
    return rows
