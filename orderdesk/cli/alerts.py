"""Alerts, the planner's triage and the supervisor's board (issue 5)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root CLI."""
