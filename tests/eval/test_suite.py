"""The suite runner and `playworld eval`: end to end on tiny datasets, and clear errors on bad input."""

from __future__ import annotations

import json

import pytest
import torch

from playworld.cli import main
from playworld.data.collect import collect
from playworld.errors import PlayworldError
from playworld.eval.api import DatasetOracle
from playworld.eval.suite import run_suite
from playworld.models.baselines import CopyLast
from playworld.models.interface import WorldSpec
from playworld.spaces import ActionSpace

RES = 32


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    return collect("explorer", tmp_path_factory.mktemp("suite") / "explorer", episodes=3, steps=40, resolution=RES, progress=False)


@pytest.fixture(scope="module")
def uniform(tmp_path_factory):
    return collect("physics/uniform", tmp_path_factory.mktemp("suite") / "uniform", episodes=3, resolution=RES, progress=False)


class Noisy:
    """A stand-in model: the last frame plus seeded noise (it ignores actions)."""

    def __init__(self, spec):
        self.spec = spec

    def reset(self, frames, actions, seed=None):
        return frames[:, -1].clone(), torch.Generator().manual_seed(seed or 0)

    def step(self, state, action):
        frame, g = state
        nxt = (frame.int() + torch.randint(-12, 13, frame.shape, generator=g)).clamp(0, 255).to(torch.uint8)
        return (nxt, g), nxt


def _spec(ds, context=4):
    return WorldSpec(resolution=ds.resolution, action_space=ds.action_space, context=context, fps=ds.fps, world=ds.world)


@pytest.mark.slow
def test_suite_end_to_end_writes_json_and_report(explorer, tmp_path):
    # every group of this task; the other groups are slow to train helpers and have their own tests
    res = run_suite(Noisy(_spec(explorer)), explorer, out_dir=tmp_path, groups=["fidelity", "physics", "coherence"],
                    strict=False, episodes=3, horizon=8, seed=0, progress=False, step=7)
    assert res["models"] == ["model", "oracle", "copy-last", "ignore-actions"]
    saved = json.loads((tmp_path / "eval" / "7.json").read_text())
    assert list(saved["groups"]) == ["fidelity", "physics", "coherence"]
    assert saved["groups"]["physics"]["skipped"].startswith("needs a physics/* dataset")
    assert saved["groups"]["physics"]["metrics"] == {}  # skipped, never 0
    loop = saved["groups"]["coherence"]["metrics"]["loop_state_error@30"]["values"]  # a quick-evaluation gap
    assert loop["oracle"] == 0.0 and loop["copy-last"] > 0 and loop["model"] > 0
    for entry in saved["groups"].values():
        for name, row in entry["metrics"].items():
            for who, v in row["values"].items():  # every value is a number, or skipped with a reason
                assert isinstance(v, float) or entry["skipped_metrics"][name][who]
    html = (tmp_path / "report.html").read_text()
    assert "loop_psnr@30" in html and saved["complete"] and "data:video/mp4;base64," in html and "data:image/png;base64," in html


def test_physics_suite_on_oracle_pseudo_run(uniform, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", "oracle", "--data", str(uniform.path), "--suite", "physics", "--out", str(tmp_path), "--context", "3"])
    assert e.value.code == 0
    res = json.loads((tmp_path / "eval" / "0.json").read_text())
    vel = res["groups"]["physics"]["metrics"]["velocity_error"]
    assert res["models"] == ["model", "copy-last"]
    assert vel["values"]["model"] == pytest.approx(vel["floor"]) and vel["values"]["copy-last"] > 5 * vel["floor"]
    assert res["dataset"]["distribution"] == "id"
    assert "velocity_error" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["eval", "copy-last", "--data", str(uniform.path), "--suite", "physics", "--no-baselines",
              "--out", str(tmp_path / "alone"), "--context", "3"])
    assert e.value.code == 0
    alone = json.loads((tmp_path / "alone" / "eval" / "0.json").read_text())
    assert alone["models"] == ["model"] and alone["groups"]["physics"]["metrics"]["velocity_error"]["values"]["model"] > 0.5


def _cli_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code != 0
    return capsys.readouterr().err


def test_bad_input_is_a_clear_error(explorer, uniform, tmp_path, capsys):
    # physics asked for by name on a world that is not physics
    err = _cli_error(["eval", "copy-last", "--data", str(explorer.path), "--suite", "physics", "--out", str(tmp_path)], capsys)
    assert "physics" in err and "physics/*" in err and "Traceback" not in err
    # too few frames for the metric: say which metric and what it needs
    err = _cli_error(["eval", "copy-last", "--data", str(uniform.path), "--suite", "physics", "--context", "40", "--out", str(tmp_path)], capsys)
    assert "physics/velocity_error" in err and "needs" in err and ">= 42 frames" in err
    # a missing run, an unknown group
    assert "does not exist" in _cli_error(["eval", str(tmp_path / "nope"), "--data", str(explorer.path)], capsys)
    assert "unknown metric group" in _cli_error(["eval", "oracle", "--data", str(explorer.path), "--suite", "vibes"], capsys)
    # a run and dataset that do not match: resolution, then action space
    wrong_res = WorldSpec(resolution=64, action_space=explorer.action_space, context=2)
    with pytest.raises(PlayworldError, match="64x64"):
        run_suite(CopyLast(wrong_res), explorer, progress=False)
    wrong_actions = WorldSpec(resolution=RES, action_space=ActionSpace.discrete(3), context=2)
    with pytest.raises(PlayworldError, match="actions"):
        run_suite(CopyLast(wrong_actions), explorer, progress=False)


def test_a_dataset_without_test_episodes(tmp_path):
    ds = collect("physics/uniform", tmp_path / "two", episodes=2, resolution=RES, progress=False)  # train + val only
    with pytest.raises(PlayworldError, match="no test episodes"):
        run_suite(DatasetOracle(ds, _spec(ds)), ds, progress=False)


def test_an_interrupted_evaluation_keeps_the_groups_it_finished(explorer, tmp_path, monkeypatch):
    from playworld.eval import coherence

    def interrupted(model, ctx):
        raise KeyboardInterrupt

    monkeypatch.setitem(coherence.coherence_group.__globals__, "_RealWorld", lambda ctx: interrupted(None, ctx))
    with pytest.raises(KeyboardInterrupt):
        run_suite(Noisy(_spec(explorer)), explorer, out_dir=tmp_path, groups=["fidelity", "coherence"], baselines=False,
                  strict=False, episodes=3, horizon=8, seed=0, progress=False, step=3)
    saved = json.loads((tmp_path / "eval" / "3.json").read_text())
    assert saved["complete"] is False and saved["groups"]["fidelity"]["metrics"]["psnr_auc"]["values"]["model"] > 0
    assert any("interrupted" in w for w in saved["warnings"]) and (tmp_path / "report.html").is_file()


def test_rollouts_report_their_progress(explorer):
    from playworld.eval.api import EvalContext

    seen = []
    ctx = EvalContext(dataset=explorer, spec=_spec(explorer), episodes=3, horizon=5, batch_size=2,
                      on_step=lambda what, done, total: seen.append((what, done, total)))
    ctx.generate(Noisy(ctx.spec), ctx.windows())
    assert [d for _, d, _ in seen] == list(range(1, 11)) and {t for _, _, t in seen} == {10}  # 2 batches x 5 steps
    assert seen[0][0] == "3 rollouts x 5 steps"


def test_sampling_steps_evaluates_the_same_run_with_another_sampler(explorer, tmp_path, cli):
    from playworld.train.loop import train

    train(tmp_path / "run", data=explorer.path, model="diffusion", preset="debug", steps=2, progress=False)
    args = ["eval", tmp_path / "run", "--data", explorer.path, "--suite", "fidelity", "--episodes", "2",
            "--horizon", "2", "--no-baselines", "--threads", "1"]
    assert cli(*args)[0] == 0 and cli(*args, "--sampling-steps", "3")[0] == 0
    as_trained = json.loads(next((tmp_path / "run" / "eval").glob("*.json")).read_text())
    three = json.loads(next((tmp_path / "run" / "sampling-steps-3" / "eval").glob("*.json")).read_text())
    psnr = [r["groups"]["fidelity"]["metrics"]["psnr_auc"]["values"]["model"] for r in (as_trained, three)]
    assert psnr[0] != psnr[1]  # the same weights, another sampler; the run's own report is kept
    code, out, err = cli("eval", "copy-last", "--data", explorer.path, "--sampling-steps", "2", "--out", tmp_path / "c")
    assert code != 0 and "no tunable sampler" in out + err
    code, out, err = cli(*args, "--sampling-steps", "17")
    assert code != 0 and "outside 1 to 16" in out + err
