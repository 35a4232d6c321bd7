"""A plain (non-editable) install carries every package, the data files and the migrations along."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("orderdesk-*.whl")
    return built


def test_wheel_contains_packages_data_and_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "orderdesk/_data/workflow.toml",
        "orderdesk/_data/packing_presets.toml",
        "orderdesk/locales/zh/core.toml",
        "orderdesk/migrations/env.py",
        "orderdesk/migrations/script.py.mako",
        "orderdesk/migrations/versions/0001_initial_schema.py",
        "screens/app.py",
        "screens/app.tcss",
        "sync/__init__.py",
    ):
        assert required in names, f"{required} missing from the wheel"
    for data_file in (ROOT / "data").rglob("*"):
        if data_file.is_file():
            assert f"orderdesk/_data/{data_file.relative_to(ROOT / 'data')}" in names


def test_installed_wheel_runs_from_elsewhere(wheel: Path, tmp_path: Path) -> None:
    """Install the wheel into a folder of its own and run the CLI away from the source tree."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target), "ORDERDESK_LANG": "en"}
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import orderdesk, orderdesk.workflow as w; print(orderdesk.__file__); print(w.default_workflow_path())",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert where[0].startswith(str(target)) and where[1].startswith(str(target))
    db = tmp_path / "fresh.db"
    for args in (
        ["init"],
        ["user", "add", "boss", "--role", "admin", "--pin", "0000"],
        ["order", "list", "--json"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "orderdesk.cli", "--db", str(db), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
