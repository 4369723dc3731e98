"""Fixtures shared by the drills. `registry_url` is the one seam between backends: each param
yields the URL of an empty registry database, and every store test and drill that takes it runs
once per backend. SQLite is always there; another backend (PostgreSQL) is added as a param here."""

from __future__ import annotations

import pytest

from tests.postgres_server import postgres_server  # noqa: F401  (a session fixture, used by the param below)


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request, tmp_path) -> str:
    """The SQLAlchemy URL of an empty registry (a fresh database per test), one per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry' / 'labline.db'}"
    if request.param == "postgresql":  # skipped, with the reason, where no server can start
        return request.getfixturevalue("postgres_server").new_database()
    raise ValueError(f"registry backend {request.param!r} has no URL here; expected 'sqlite' or 'postgresql'")
