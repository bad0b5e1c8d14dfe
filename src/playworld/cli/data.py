"""`playworld collect` and `playworld data ...`: datasets from worlds and videos."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    data = typer.Typer(help="Inspect, verify, import and export datasets.", no_args_is_help=True)
    app.add_typer(data, name="data")
