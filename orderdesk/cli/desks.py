"""Sales, QC and finance commands for scripts (issue 6)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root CLI."""
