"""Warehouse: shipping labels and the desk card (issue 3)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root CLI."""
