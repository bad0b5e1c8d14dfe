"""Every command's --help reads in an 80-column terminal: nothing wider, no value cut short."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from playworld.cli import app
from playworld.cli.common import family_names
from playworld.models.registry import list_families


def _commands(group, prefix: tuple[str, ...] = ()):
    yield prefix, group
    for name, cmd in (getattr(group, "commands", None) or {}).items():  # typer's groups are not click.Group
        yield from _commands(cmd, prefix + (name,))


COMMANDS = [path for path, _ in _commands(typer.main.get_command(app))]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "playworld")
def test_help_fits_80_columns(path):
    res = CliRunner().invoke(app, [*path, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide, "\n".join(too_wide)
    assert "…" not in res.output  # a value cut short by the formatter
    if len(path) == 1 or not path:
        assert "Usage:" in res.output


def test_model_option_lists_the_registered_families():
    own = [f for f in list_families() if f != "tiny-test"]  # other test modules register 'tiny-test' in this process
    assert family_names() == own
    res = CliRunner().invoke(app, ["train", "--help"], terminal_width=80)
    flat = " ".join(res.output.split())
    assert f"{', '.join(own)} (default: diffusion)" in flat
