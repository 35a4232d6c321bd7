"""Fixtures for the sync tests (imported by each ``test_sync_*`` module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sync_harness import PgCluster, World, WorldTemplate, build_template, open_world

DESKS = ["a", "b"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> WorldTemplate:
    return build_template(tmp_path_factory.mktemp("world-sqlite"), DESKS)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pg_template(tmp_path_factory: pytest.TempPathFactory, pg_cluster: PgCluster) -> WorldTemplate:
    return build_template(tmp_path_factory.mktemp("world-pg"), DESKS, pg=pg_cluster)


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A central API on SQLite, running on loopback, with desks a and b enrolled and bootstrapped; on a real
    PostgreSQL too for a test marked ``@BOTH_STORES``."""
    kind = getattr(request, "param", "sqlite")
    template = request.getfixturevalue("sqlite_template" if kind == "sqlite" else "pg_template")
    w = open_world(template, tmp_path / "world")
    yield w
    w.close()


# Runs a test that takes ``world`` on each server store: SQLite and a real PostgreSQL.
BOTH_STORES = pytest.mark.parametrize("world", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """The same world on each server store: SQLite and a real PostgreSQL."""
    template = request.getfixturevalue("sqlite_template" if request.param == "sqlite" else "pg_template")
    w = open_world(template, tmp_path / "world")
    yield w
    w.close()


@pytest.fixture
def pg_world(pg_template: WorldTemplate, tmp_path: Path) -> Iterator[World]:
    """The world on a real PostgreSQL only (for what only PostgreSQL can get wrong)."""
    w = open_world(pg_template, tmp_path / "world")
    yield w
    w.close()
