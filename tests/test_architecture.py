"""The layers of docs/architecture.md hold: lint-imports keeps them, consumers never probe a model, K has one source."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from playworld.data.collect import collect
from playworld.data.store import Dataset
from playworld.data.windows import dataset_windows
from playworld.errors import PlayworldError
from playworld.eval.api import EvalContext
from playworld.models.rollout import rollout
from playworld.play.contexts import DatasetContexts
from playworld.play.session import PlaySession
from playworld.runs.load import load_world_model
from playworld.runs.presets import PRESET_DIR
from playworld.train.loop import train

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(src_parent: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(src_parent)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_layer_contract_is_kept():
    res = _lint(ROOT / "src", ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "1 kept, 0 broken" in res.stdout


@pytest.mark.slow
@pytest.mark.parametrize("module", ["models/interface.py", "eval/fidelity.py"])
def test_an_upward_import_breaks_the_contract(module, tmp_path):
    """The contract can fail: a copy of the package where `module` imports the trainer is refused."""
    shutil.copytree(ROOT / "src" / "playworld", tmp_path / "src" / "playworld", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "playworld" / module
    target.write_text(target.read_text() + "\nimport playworld.train  # noqa: E402,F401  (an upward import)\n")
    res = _lint(tmp_path / "src", tmp_path)
    assert res.returncode != 0 and "BROKEN" in res.stdout.upper(), res.stdout[-2000:]
    assert "playworld.train" in res.stdout


def test_consumers_never_probe_a_model_for_an_ability():
    """play, agents and eval ask isinstance(model, Protocol) (models/interface.py), never getattr/hasattr."""
    probe = re.compile(r"\b(getattr|hasattr)\((self\.)?(model|wm|world_model|net)\b")
    found = []
    for folder in ("play", "agents", "eval"):
        for path in (ROOT / "src" / "playworld" / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if probe.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


@pytest.fixture(scope="module")
def k3_run(tmp_path_factory):
    """A debug diffusion run whose preset says `context: 3`, the one place K is set."""
    root = tmp_path_factory.mktemp("k3")
    data = collect("explorer", root / "data", 6, policy="random", seed=0, steps=24, resolution=32, progress=False)
    preset = yaml.safe_load((PRESET_DIR / "debug.yaml").read_text())
    assert preset["context"] != 3
    preset["context"] = 3
    (root / "k3.yaml").write_text(yaml.safe_dump(preset))
    train(root / "run", data=root / "data", model="diffusion", preset=str(root / "k3.yaml"), steps=2, progress=False)
    return root / "run", data


def test_k_set_in_one_place_reaches_training_rollout_eval_and_play(k3_run):
    run, data = k3_run
    config = yaml.safe_load((run / "config.yaml").read_text())
    meta = json.loads((run / "meta.json").read_text())
    assert config["context"] == 3 and meta["spec"]["context"] == 3
    assert "context" not in config["model"]["diffusion"]  # no second source in the family's config
    model = load_world_model(run)
    assert model.spec.context == 3
    # training: the network was built for 3 context frames (3 x RGB into the stem's side input)
    assert model.net.unet.stem_side.in_channels == 3 * 3 * model.config.patch**2
    # rollout: the windows it cuts and the state it keeps hold 3 frames
    windows = dataset_windows(data, model.spec.context, 4, episodes=2, split="train")
    assert windows.context_frames.shape[1] == 3
    assert rollout(model, windows, 4).shape[:2] == (2, 4)
    assert model.reset(windows.context_frames, windows.context_actions, seed=0).frames.shape[1] == 3
    # eval: its windows carry 3 context frames
    ctx = EvalContext(dataset=Dataset(data.path), spec=model.spec, split="train", episodes=2, horizon=4)
    assert ctx.windows().batch().context_frames.shape[1] == 3
    # play: a dataset context is 3 frames, and the session's model state holds them
    session = PlaySession(model, DatasetContexts(data.path, model.spec), seed=0)
    session.reset()
    assert session.state.frames.shape[1] == 3
    session.step()


def test_k_changes_with_the_command_line_and_not_on_resume(k3_run, tmp_path):
    _, data = k3_run
    train(tmp_path / "k5", data=data.path, model="diffusion", preset="debug", steps=1, sets=["model.context=5"], progress=False)
    assert load_world_model(tmp_path / "k5").spec.context == 5
    with pytest.raises(PlayworldError, match="context length cannot change"):
        train(tmp_path / "k5", resume=True, steps=2, sets=["model.context=4"], progress=False)
    with pytest.raises(PlayworldError, match="context length K must be an integer of at least 1"):
        train(tmp_path / "k0", data=data.path, model="diffusion", preset="debug", steps=1, sets=["model.context=0"], progress=False)


def test_the_bare_cli_starts_fast():
    """`playworld --help` must not import torch (1.4 s); the CLI imports heavy modules inside its commands."""
    code = "import sys, playworld.cli; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "False", res.stderr
