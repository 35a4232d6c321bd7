"""Central API and sync: serve, enrol, sync (issue 4)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root CLI."""
