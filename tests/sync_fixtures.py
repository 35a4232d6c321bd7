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


# The central API's stores every sync test can run on: SQLite and a real PostgreSQL.
STORES = ["sqlite", "postgresql"]


def _world_on(request: pytest.FixtureRequest, store: str, tmp_path: Path) -> Iterator[World]:
    template = request.getfixturevalue("sqlite_template" if store == "sqlite" else "pg_template")
    w = open_world(template, tmp_path / "world")
    yield w
    w.close()


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A central API on SQLite, running on loopback, with desks a and b enrolled and bootstrapped; on a real
    PostgreSQL too for a test marked ``@BOTH_STORES``."""
    yield from _world_on(request, getattr(request, "param", "sqlite"), tmp_path)


# Runs a test that takes ``world`` on each server store.
BOTH_STORES = pytest.mark.parametrize("world", STORES, indirect=True)


@pytest.fixture(params=STORES)
def any_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """The same world on each server store."""
    yield from _world_on(request, request.param, tmp_path)


@pytest.fixture
def pg_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """The world on a real PostgreSQL only (for what only PostgreSQL can get wrong)."""
    yield from _world_on(request, "postgresql", tmp_path)
