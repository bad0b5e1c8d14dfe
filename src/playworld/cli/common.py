"""Options and start-up shared by the commands that compute (train, eval, rollout, play, dream, bench, quickstart)."""

from __future__ import annotations

import importlib.util
import pkgutil
from typing import Any, Optional

import typer

THREADS_HELP = ("CPU threads for torch (default: the cores not already busy, or OMP_NUM_THREADS; two jobs that "
                "each take every core run many times slower, so pass 1 beside another job).")


def family_names() -> list[str]:
    """The built-in model families (one sub-package of playworld.models each), found without importing
    them (they import torch); tests/test_cli_help.py checks the list against the registry."""
    spec = importlib.util.find_spec("playworld.models")
    return sorted(m.name for m in pkgutil.iter_modules(spec.submodule_search_locations or []) if m.ispkg)


def threads_option() -> Any:
    """The `--threads` option, the same on every command."""
    return typer.Option(None, "--threads", help=THREADS_HELP, min=1)


def use_threads(threads: Optional[int]) -> int:
    """Set torch's threads for this command; a busy machine gets a one-line warning on stderr."""
    # imported here, not at the top: compute imports torch (about 1.4 s), which `playworld --help` must not pay
    from playworld.compute import set_threads

    return set_threads(threads, warn=lambda message: typer.echo(f"warning: {message}", err=True))
