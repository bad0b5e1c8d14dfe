"""Suite-wide fixtures."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's chromium, which the browser tests drive through Playwright (`make test` installs it)"""


def need_browser(chromium: Path = CHROMIUM) -> str:
    """`chromium`'s path when it and Playwright are there. When either is missing the browser tests skip
    on a developer's machine, but fail under CI=true (set by CI), where a skip would hide that they never ran."""
    missing = [f"{chromium} (`make test` installs Debian's chromium)"] if not Path(chromium).exists() else []
    if importlib.util.find_spec("playwright") is None:
        missing.append("Playwright (pip install -e '.[test]')")
    if missing:
        message = f"the browser tests need {' and '.join(missing)}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; under CI=true a missing browser is a failure, not a skip", pytrace=False)
        pytest.skip(message)
    return str(chromium)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of the chromium the browser tests launch (see `need_browser` for when it is missing)."""
    return need_browser()


@pytest.fixture(scope="session")
def browser_check():
    """`need_browser` itself, for the test of what a missing browser does (conftest is not importable)."""
    return need_browser


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread for every test: the networks in tests are tiny, and on a shared 2-core
    machine two OpenMP threads per process can be 10-100x slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cli(capsys):
    """cli(*args) -> (exit code, stdout, stderr), run exactly as the console script runs."""
    from playworld.cli import main

    def run(*args) -> tuple[int, str, str]:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run
