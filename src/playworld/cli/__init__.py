"""The `playworld` command. Thin: each sub-module parses its flags and calls the library.

Each module in `_COMMAND_MODULES` defines `register(app: typer.Typer)` and adds its commands.
"""

from __future__ import annotations

import importlib
import sys

import typer

from playworld.errors import PlayworldError

app = typer.Typer(
    name="playworld",
    help=(
        "Train action-conditioned world models, play them in the browser, and evaluate them.\n\n"
        "The workflow: collect a dataset from a world (or import video) -> train a model -> "
        "roll it out, evaluate it, play it. `playworld quickstart` does the whole job on the "
        "built-in explorer world."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help wraps at the terminal width; rich's three-column panels cut values at 80
)

_COMMAND_MODULES = ("quickstart", "data", "models", "play", "evaluate", "agents", "bench", "experiment")

for _name in _COMMAND_MODULES:
    importlib.import_module(f"playworld.cli.{_name}").register(app)


def fail(message: str, fix: str | None = None, code: int = 2) -> "typer.Exit":
    """Print a one-line error (and the fix) to stderr; return the Exit to raise."""
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    if fix:
        console.print(f"[bold]fix:[/] {fix}", soft_wrap=True)
    return typer.Exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one clean message and a non-zero exit."""
    try:
        app(args=argv, prog_name="playworld")
    except PlayworldError as e:
        sys.exit(fail(e.message, e.fix).exit_code)
    except KeyboardInterrupt:
        sys.exit(fail("interrupted", None, code=130).exit_code)
