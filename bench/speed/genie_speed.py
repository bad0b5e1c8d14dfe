"""Genie generation speed at 64x64, batch 1, printed as JSON: with and without the KV cache, and an IRIS-size transformer.

    python bench/speed/genie_speed.py [--preset small] [--frames 16] [--threads 2] [--iris-layers 10 --iris-dim 256]

All three are built in the same run, with random weights (speed does not depend on training):
- genie (the preset's `model: genie:`), streaming with the KV cache over the temporal context;
- the same network without the cache (the context is re-run at every MaskGIT iteration);
- an IRIS-size transformer (Micheli et al. 2023: 10 layers, d=256, 17 tokens per frame = 16 frame
  tokens + 1 action token, 8 heads), generating a frame token by token with its own KV cache over
  the last K frames, as IRIS does. It is the transformer alone: no tokenizer decode is timed for it,
  so genie's detokenizer time is reported separately for a like-for-like comparison.
Every size in the JSON (layers, width, tokens per frame, parameters) is read from the network built.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from playworld.models import get_family
from playworld.models.interface import WorldSpec
from playworld.runs.presets import load_preset, make_model_config, resolve_context
from playworld.spaces import ActionSpace

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

RES = 64


class _Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.qkv, self.proj = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ln2, self.mlp = nn.LayerNorm(d), nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, cache, keep):  # x (B, L, d); cache (k, v) (B, heads, Tc, dh) or None
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        h = F.scaled_dot_product_attention(q, k, v, is_causal=cache is None)
        x = x + self.proj(h.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.ln2(x)), (k[:, :, -keep:], v[:, :, -keep:])


class IrisTransformer(nn.Module):
    """A GPT over 17 tokens per frame (16 frame tokens + 1 action token; IRIS's world model is 10 layers of
    width 256, 8 heads), for timing token-by-token generation."""

    def __init__(self, vocab=512, actions=5, layers=10, d=256, heads=8, tokens_per_frame=17, frames=20):
        super().__init__()
        self.tpf, self.keep = tokens_per_frame, tokens_per_frame * frames
        self.tok, self.act = nn.Embedding(vocab, d), nn.Embedding(actions, d)
        self.pos = nn.Embedding(self.keep + tokens_per_frame, d)
        self.blocks = nn.ModuleList(_Block(d, heads) for _ in range(layers))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def run(self, x, caches, start):
        x = x + self.pos(torch.arange(start, start + x.shape[1]) % self.pos.num_embeddings)
        new = []
        for i, blk in enumerate(self.blocks):
            x, c = blk(x, None if caches is None else caches[i], self.keep)
            new.append(c)
        return self.head(self.ln(x)), new

    @torch.inference_mode()
    def generate(self, context_tokens, actions, n_frames, g):
        """context_tokens (1, K, 16); prefill the context, then per frame: action token + 16 sampled tokens."""
        k = context_tokens.shape[1]
        seq = torch.cat([self.act(actions[:, :k, None]), self.tok(context_tokens)], 2).flatten(1, 2)  # (1, K*17, d)
        logits, caches = self.run(seq, None, 0)
        pos = seq.shape[1]
        for f in range(n_frames):
            x = self.act(actions[:, k + f])[:, None]
            for _ in range(self.tpf - 1):
                logits, caches = self.run(x, caches, pos)
                pos += 1
                nxt = torch.multinomial(logits[:, -1].softmax(-1), 1, generator=g)
                x = self.tok(nxt)
            _, caches = self.run(x, caches, pos)  # the frame's last token enters the cache
            pos += 1


def _time(fn, repeats: int) -> tuple[float, float]:
    """Fastest wall-clock seconds of `repeats` calls, and the CPU seconds of that call (on a shared
    machine, frames per CPU-second say what the code costs, wall-clock what it felt like)."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        if wall < best:
            best, best_cpu = wall, cpu
    return best, best_cpu


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def time_genie(preset_name: str, frames: int, repeats: int, g: torch.Generator) -> tuple[dict, torch.Tensor]:
    """Genie's frames/s with and without the KV cache and its detokenizer time; returns (figures, actions)."""
    family, preset = get_family("genie"), load_preset(preset_name)
    config = make_model_config(family, preset)
    spec = WorldSpec(resolution=RES, action_space=ActionSpace.discrete(5), context=resolve_context(preset))
    net = family.build(config, spec).eval().requires_grad_(False)
    k, dyn = spec.context, net.dynamics
    context = torch.randint(0, 256, (1, k, 3, RES, RES), dtype=torch.uint8, generator=g)
    actions = torch.randint(5, (1, k + frames), generator=g)
    out = {"tokens_per_frame": int(dyn.tokens), "maskgit_steps": int(config.steps), "context": k,
           "layers": len(dyn.blocks), "dim": int(dyn.embed.embedding_dim), "params_dynamics": _params(dyn)}
    for cache in (True, False):
        model = family.world_model(net, family.make_config({**vars(config), "cache": cache}), spec)

        def rollout(model=model):
            state = model.reset(context, actions[:, :k], seed=0)
            for j in range(frames):
                state, _ = model.step(state, actions[:, k + j])

        rollout()  # warm-up
        wall, cpu = _time(rollout, repeats)
        name = "cache" if cache else "no_cache"
        out[f"fps_{name}"], out[f"frames_per_cpu_s_{name}"] = frames / wall, frames / cpu
    tokens = torch.randint(config.vocab, (1, dyn.tokens), generator=g)
    with torch.inference_mode():
        decode, _ = _time(lambda: net.tokenizer.decode(tokens, net.side), repeats * 3)
    out["detokenize_ms_per_frame"] = 1000 * decode
    out["speedup_cache"] = out["fps_cache"] / out["fps_no_cache"]
    out["fps_cache_transformer_only"] = frames / (frames / out["fps_cache"] - frames * decode)
    return out, actions


def time_iris(layers: int, dim: int, k: int, actions: torch.Tensor, frames: int, repeats: int, g: torch.Generator) -> dict:
    """The IRIS-size transformer's frames/s generating token by token (no tokenizer)."""
    iris = IrisTransformer(layers=layers, d=dim).eval()
    context = torch.randint(iris.tok.num_embeddings, (1, k, iris.tpf - 1), generator=g)
    run = lambda: iris.generate(context, actions, frames, g)
    run()  # warm-up
    wall, cpu = _time(run, repeats)
    return {"layers": len(iris.blocks), "dim": int(iris.tok.embedding_dim), "heads": iris.blocks[0].heads,
            "tokens_per_frame": iris.tpf, "context": k, "params": _params(iris),
            "fps_transformer_only": frames / wall, "frames_per_cpu_s_transformer_only": frames / cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(seed=0)])
    ap.add_argument("--preset", default="small", help="preset whose model: genie: section is timed")
    ap.add_argument("--frames", type=int, default=16, help="frames generated per timed rollout")
    ap.add_argument("--repeats", type=int, default=3, help="timed rollouts; the fastest counts")
    ap.add_argument("--iris-layers", type=int, default=10, help="layers of the IRIS-size transformer (IRIS: 10)")
    ap.add_argument("--iris-dim", type=int, default=256, help="its width (IRIS: 256)")
    args = ap.parse_args()
    common.start(args)
    g = torch.Generator().manual_seed(args.seed)
    genie, actions = time_genie(args.preset, args.frames, args.repeats, g)
    iris = time_iris(args.iris_layers, args.iris_dim, genie["context"], actions, args.frames, args.repeats, g)
    common.report("genie_speed", {
        "resolution": RES, "batch": 1, "frames": args.frames, "preset": args.preset, "genie": genie, "iris_size": iris,
        "genie_vs_iris_transformer_only": genie["fps_cache_transformer_only"] / iris["fps_transformer_only"]}, args)


if __name__ == "__main__":
    main()
