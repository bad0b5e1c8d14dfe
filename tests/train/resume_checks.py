"""What shows that `--resume` continued a run rather than started it again.

Equal weights are not enough: noise seeds depend only on (seed, rank, step) and batches only on the
step index, so retraining from step 0 reproduces the straight run exactly. A resumed invocation must
*begin* at step N + 1, which only what happens inside it can show:

    steps      the objective is called at step indices N .. 2N-1, never below N
    optimizer  AdamW's state at the first resumed step is the checkpoint's (step counts, exp_avg, exp_avg_sq)
    lr         the learning rate of the first resumed step continues the warm-up where it stopped
    ema        the EMA's n_averaged at its first resumed update is the checkpoint's N
    metrics    metrics.jsonl keeps the first invocation's rows as written; new rows start after N
    meta       meta.json records that the invocation resumed at step N
    weights    and the end state is the straight run's (raw and EMA weights, training state)

`resume_failures` runs a straight 2N-step run and an N + resume-to-2N run and returns the checks that
failed (name -> why), so a test asserts `{}` on the real trainer and names the checks a deliberately
broken trainer (e.g. one that restarts instead of resuming) must fail.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.optim.swa_utils import AveragedModel

from playworld.models import get_family
from playworld.runs.checkpoints import load_training_state, resolve_checkpoint
from playworld.train.loop import train


def metrics_lines(run: Path) -> list[str]:
    return (Path(run) / "metrics.jsonl").read_text().splitlines()


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in metrics_lines(run)]


def train_rows(run: Path) -> dict[int, dict]:
    return {r["step"]: r for r in rows(run) if r["kind"] == "train"}


class Probe:
    """Records, while active, what the trainer does at its first step: the step indices the objective
    is called with, AdamW's state just before its first update, the EMA's count before its first update."""

    def __init__(self, monkeypatch, family_name: str):
        self.steps: list[int] = []
        self.optimizer: dict | None = None
        self.lr: float | None = None
        self.ema_count: int | None = None
        family = get_family(family_name)
        regime_loss = family.regime_loss

        def spy_loss(net, batch, config, step, generator, regime):
            self.steps.append(int(step))
            return regime_loss(net, batch, config, step, generator, regime)

        update = AveragedModel.update_parameters

        def spy_update(ema, model):
            if self.ema_count is None:
                self.ema_count = int(ema.n_averaged)
            return update(ema, model)

        monkeypatch.setattr(family, "regime_loss", spy_loss)
        monkeypatch.setattr(AveragedModel, "update_parameters", spy_update)
        self._hook = register_optimizer_step_pre_hook(self._before_step)

    def _before_step(self, optimizer, args, kwargs):
        if self.optimizer is None:
            self.optimizer = copy.deepcopy(optimizer.state_dict())
            self.lr = float(optimizer.param_groups[0]["lr"])

    def close(self) -> None:
        self._hook.remove()


def _optimizer_difference(a: dict, b: dict, exact: bool = True) -> str | None:
    """None when AdamW states `a` and `b` hold the same per-parameter tensors, else what differs."""
    if a["state"].keys() != b["state"].keys() or not a["state"]:
        return f"state for parameters {sorted(a['state'])}, the checkpoint for {sorted(b['state'])}"
    for i, sa in a["state"].items():
        for key, value in b["state"][i].items():
            x, y = torch.as_tensor(sa[key]), torch.as_tensor(value)
            if not (torch.equal(x, y) if exact else torch.allclose(x.float(), y.float(), rtol=1e-5, atol=1e-6)):
                return f"parameter {i}: {key} differs from the checkpoint's"
    return None


def resume_failures(tmp_path: Path, monkeypatch, data, family: str, sets: list[str], n: int = 2) -> dict[str, str]:
    """Train `family` 2n steps straight and n + resume to 2n; -> {check name: why it failed}."""
    sets = [*sets, "train.log_every=1", "train.keep_checkpoints=0"]
    common = dict(data=data, model=family, preset="debug", sets=sets, progress=False)
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight = train(straight_dir, steps=2 * n, **common)
    first = train(resumed_dir, steps=n, **common)
    assert first.step == n
    before = metrics_lines(resumed_dir)  # read now: a restart would rewrite what the first invocation wrote
    saved = load_training_state(resolve_checkpoint(resumed_dir))
    saved_weights = load_file(resolve_checkpoint(resumed_dir) / "raw.safetensors")

    with monkeypatch.context() as m:
        probe = Probe(m, family)
        try:
            resumed = train(resumed_dir, resume=True, steps=2 * n, sets=sets, progress=False)
        finally:
            probe.close()

    failed: dict[str, str] = {}
    if probe.steps != list(range(n, 2 * n)):
        failed["steps"] = f"the objective ran at steps {probe.steps}, expected {list(range(n, 2 * n))}"
    if probe.optimizer is None or (why := _optimizer_difference(probe.optimizer, saved["optimizer"])):
        failed["optimizer"] = f"at the first resumed step AdamW had {why or 'no state'}"
    straight_lr = train_rows(straight_dir)[n + 1]["lr"]
    if probe.lr is None or abs(probe.lr - straight_lr) > 1e-12:
        failed["lr"] = f"the first resumed step used lr {probe.lr}, the straight run {straight_lr}"
    resumed_lrs = {s: r["lr"] for s, r in train_rows(resumed_dir).items() if s > n}
    if resumed_lrs != {s: r["lr"] for s, r in train_rows(straight_dir).items() if s > n}:
        failed.setdefault("lr", f"learning rates after step {n} differ from the straight run's: {resumed_lrs}")
    if probe.ema_count != int(saved["ema_n_averaged"]):
        failed["ema"] = f"the EMA's first resumed update saw n_averaged={probe.ema_count}, the checkpoint {int(saved['ema_n_averaged'])}"

    after = metrics_lines(resumed_dir)
    kept, new = after[: len(before)], [json.loads(line) for line in after[len(before):]]
    new_train = [r["step"] for r in new if r["kind"] == "train"]
    if kept != before:
        failed["metrics"] = "the first invocation's rows were rewritten"
    elif any(r["step"] <= n for r in new) or new_train[:1] != [n + 1]:
        failed["metrics"] = f"the resumed invocation wrote rows at steps {[r['step'] for r in new]}"
    elif sorted(train_rows(resumed_dir)) != list(range(1, 2 * n + 1)):
        failed["metrics"] = f"train rows at steps {sorted(train_rows(resumed_dir))}"
    meta = json.loads((resumed_dir / "meta.json").read_text())
    if [r["step"] for r in meta.get("resumed", [])] != [n]:
        failed["meta"] = f"meta.json records resumed invocations {meta.get('resumed')}"

    if not straight.step == resumed.step == 2 * n:
        failed["weights"] = f"steps {straight.step} (straight) and {resumed.step} (resumed)"
    else:
        for weights in ("raw", "model"):  # the optimised weights and the EMA weights
            a = load_file(resolve_checkpoint(straight_dir) / f"{weights}.safetensors")
            b = load_file(resolve_checkpoint(resumed_dir) / f"{weights}.safetensors")
            if a.keys() != b.keys() or any(not torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a):
                failed["weights"] = f"the {weights} weights differ from the straight run's"
        ends = [load_training_state(resolve_checkpoint(d)) for d in (straight_dir, resumed_dir)]
        if int(ends[0]["ema_n_averaged"]) != int(ends[1]["ema_n_averaged"]) or _optimizer_difference(
                ends[0]["optimizer"], ends[1]["optimizer"], exact=False):
            failed.setdefault("weights", "the final training state differs from the straight run's")
    end = load_file(resolve_checkpoint(resumed_dir) / "raw.safetensors")
    if all(torch.equal(saved_weights[k], end[k]) for k in saved_weights if saved_weights[k].is_floating_point()):
        failed["moved"] = "the resumed run's weights did not move from the checkpoint it resumed from"
    return failed
