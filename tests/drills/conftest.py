"""Fixtures shared by the drills. `registry_url` is the one seam between backends: each param
yields the URL of an empty registry database, and every store test and drill that takes it runs
once per backend. SQLite is always there; another backend (PostgreSQL) is added as a param here."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite"])
def registry_url(request, tmp_path) -> str:
    """The SQLAlchemy URL of an empty registry (a fresh database per test), one per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry' / 'labline.db'}"
    raise ValueError(f"registry backend {request.param!r} has no URL here; expected 'sqlite'")
