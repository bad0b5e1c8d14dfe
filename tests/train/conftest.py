"""Fixtures for the trainer's tests: tiny explorer datasets and a trained tiny run."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_family  # noqa: E402,F401  (registers the 'tiny-test' family)


def _collect(out: Path, world: str = "explorer", resolution: int = 32, episodes: int = 6, steps: int = 30) -> Path:
    from playworld.data.collect import collect

    collect(world, out, episodes=episodes, steps=steps, resolution=resolution, progress=False)
    return out



@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """6 explorer episodes of 31 frames at 32x32 (splits: train, val, test all present)."""
    return _collect(tmp_path_factory.mktemp("data") / "explorer")


@pytest.fixture(scope="session")
def other_resolution_data(tmp_path_factory) -> Path:
    return _collect(tmp_path_factory.mktemp("data") / "explorer40", resolution=40, episodes=3)


@pytest.fixture(scope="session")
def other_actions_data(tmp_path_factory) -> Path:
    return _collect(tmp_path_factory.mktemp("data") / "uniform", world="physics/uniform", episodes=3)


@pytest.fixture(scope="session")
def _trained_run(tmp_path_factory, tiny_data) -> Path:
    from playworld.train.loop import train

    run = tmp_path_factory.mktemp("runs") / "tiny"
    train(run, data=tiny_data, model=tiny_family.NAME, preset="debug", progress=False)
    return run


@pytest.fixture
def trained_run(_trained_run, tmp_path) -> Path:
    """A finished 6-step tiny-test run (debug preset), copied so a test may damage it."""
    run = tmp_path / "run"
    shutil.copytree(_trained_run, run, symlinks=True)
    return run


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run `playworld ARGV` in this process (so the test family is registered) -> (exit code, output)."""
    from playworld.cli import main

    code = 0
    try:
        main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def cli(capsys):
    """cli([...]) -> (exit code, stdout+stderr) of `playworld ...` run in-process."""
    return lambda argv: run_cli(argv, capsys)
