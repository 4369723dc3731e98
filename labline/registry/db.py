"""The registry's database: where it is, how it is opened, and its schema migrations.

Migrations are explicit and numbered. `schema_version` holds the number of the last one applied;
opening a database applies the missing ones in order, each in its own transaction, so a newer
labline opens an older database and keeps its rows. A database newer than this labline is refused
rather than guessed at.

SQLite needs one adjustment: the standard library driver starts transactions lazily (on the first
write), so two processes could both read the champion before either writes. Here every write
transaction starts with BEGIN IMMEDIATE, which takes the database's write lock up front; the
second writer waits (up to `timeout` seconds) and then re-reads what the first one committed.
PostgreSQL gets the same from a transaction-level advisory lock, which exists before any table
does, so two processes opening an empty database do not both run the first migrations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from labline import paths

LOCK_TIMEOUT_S = 30.0
PG_WRITE_LOCK = 0x1AB11E  # the advisory lock key every registry writer takes on PostgreSQL


class RegistryError(Exception):
    """A registry request that cannot be satisfied: unknown version, refused input, bad artifact."""


def default_url() -> str:
    """`$LABLINE_DB`, else a SQLite file `.labline/labline.db` under the project root."""
    return paths.registry_url()


def make_engine(url: str | None = None) -> Engine:
    """An engine for `url` (any SQLAlchemy URL); a SQLite file's folder is created if needed."""
    url = url or default_url()
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise RegistryError(f"registry URL {url!r} is not a SQLAlchemy URL (e.g. sqlite:///path/labline.db)") from exc
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, connect_args={"timeout": LOCK_TIMEOUT_S})

    @sa.event.listens_for(engine, "connect")
    def _manual_transactions(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # the driver stops issuing its own BEGIN; we do

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection):
        immediate = conn.get_execution_options().get("registry_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction holding the write lock from its first statement until commit.

    SQLite: BEGIN IMMEDIATE. Other databases: see `_serialize_writers`.
    """
    with engine.connect().execution_options(registry_write=True) as conn:
        with conn.begin():
            _serialize_writers(conn)
            yield conn


def _serialize_writers(conn: Connection) -> None:
    """Hold the registry's write lock until this transaction ends (SQLite's BEGIN IMMEDIATE has it already).

    PostgreSQL: an advisory lock; as its transactions read committed, every statement after it sees
    what the writer before committed. Other databases: a row lock on `schema_version`, once it exists.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_WRITE_LOCK})
    elif conn.dialect.name != "sqlite" and sa.inspect(conn).has_table("schema_version"):
        conn.execute(sa.select(schema_version.c.version).with_for_update())


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent snapshot for reading several tables."""
    with engine.connect() as conn:
        with conn.begin():
            yield conn


# The current schema, used by queries. Migrations below build it step by step.
metadata = sa.MetaData()
schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))


def _lineage_columns() -> list[sa.Column]:
    """model_versions as migration 1 created it (fresh Column objects each call)."""
    return [
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(100), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("dataset", sa.String(500)),
        sa.Column("data_fingerprint", sa.String(64)),
        sa.Column("git_sha", sa.String(64)),
        sa.Column("git_dirty", sa.Boolean),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("artifact_path", sa.String(2000), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("packages", sa.JSON, nullable=False),
        sa.Column("task", sa.String(50)),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("registered", sa.String(40), nullable=False),
        sa.UniqueConstraint("run_id", "step", name="uq_model_versions_run_step"),
    ]


def _alias_columns(scoped: bool = True) -> list[sa.Column]:
    """aliases as migration 1 created it (global names), or scoped by data set (migration 3)."""
    scope = [sa.Column("scope", sa.String(200), primary_key=True)] if scoped else []
    return [
        *scope,
        sa.Column("alias", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, sa.ForeignKey("model_versions.version"), nullable=False),
        sa.Column("updated", sa.String(40), nullable=False),
    ]


model_versions = sa.Table(
    "model_versions",
    metadata,
    *_lineage_columns(),
    sa.Column("checks", sa.JSON),  # migration 2: validation and audit results read from the run
    sa.Column("scope", sa.String(200)),  # migration 3: the data set whose aliases it can hold
)
aliases = sa.Table("aliases", metadata, *_alias_columns())


def _decision_columns(scoped: bool = True) -> list[sa.Column]:
    """decisions as migration 2 created it, or with the data set's scope (migration 3)."""
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer),  # the candidate; null when there was none
        sa.Column("previous", sa.Integer),  # who held the alias when the decision was taken
        sa.Column("metric", sa.String(100)),
        sa.Column("promoted", sa.Boolean, nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        *([sa.Column("scope", sa.String(200))] if scoped else []),
    ]


class DecisionKind(StrEnum):
    """What `decisions.kind` holds (registry/decisions.py reads it into typed records)."""

    GATE = "gate"  # the gate's verdict, promoted or refused
    ACCEPTED = "accepted"  # the gate refused and a person accepted the risk (promote --accept)
    FORCED = "forced"  # champion moved by hand, without the gate (alias --force --reason)
    MOVED = "moved"  # another alias set by hand
    REMOVED = "removed"  # an alias removed


def _who_columns() -> list[sa.Column]:
    """What migration 4 adds to decisions: the kind of decision, who took it and why."""
    return [sa.Column("kind", sa.String(20)), sa.Column("who", sa.String(200)), sa.Column("why", sa.Text)]


decisions = sa.Table("decisions", metadata, *_decision_columns(), *_who_columns())


def _migration_1(conn: Connection) -> None:
    """Model versions with their lineage, and aliases."""
    first = sa.MetaData()
    sa.Table("schema_version", first, sa.Column("version", sa.Integer, nullable=False))
    sa.Table("model_versions", first, *_lineage_columns())
    sa.Table("aliases", first, *_alias_columns(scoped=False))
    first.create_all(conn)
    conn.execute(sa.insert(schema_version).values(version=0))


def _migration_2(conn: Connection) -> None:
    """Promotion decisions, and each version's validation/audit results for the gate."""
    json_type = sa.JSON().compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE model_versions ADD COLUMN checks {json_type}"))
    second = sa.MetaData()
    sa.Table("decisions", second, *_decision_columns(scoped=False))
    second.create_all(conn)


def _migration_3(conn: Connection) -> None:
    """Aliases scoped by data set: each version gets its scope, each alias the scope of its version."""
    from labline.registry.scope import DEFAULT_SCOPE, dataset_scope

    string = sa.String(200).compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE model_versions ADD COLUMN scope {string}"))
    conn.execute(sa.text(f"ALTER TABLE decisions ADD COLUMN scope {string}"))
    rows = conn.execute(sa.text("SELECT version, dataset FROM model_versions")).all()
    for version, dataset in rows:
        conn.execute(
            sa.update(model_versions).where(model_versions.c.version == version).values(scope=dataset_scope(dataset))
        )
    old = conn.execute(sa.text("SELECT alias, version, updated FROM aliases")).all()
    conn.execute(sa.text("DROP TABLE aliases"))
    aliases.create(conn)
    scopes = dict(conn.execute(sa.select(model_versions.c.version, model_versions.c.scope)).all())
    for alias, version, updated in old:
        conn.execute(
            sa.insert(aliases).values(
                scope=scopes.get(version, DEFAULT_SCOPE), alias=alias, version=version, updated=updated
            )
        )


def _migration_4(conn: Connection) -> None:
    """Decisions say who took them and why (alias moves by hand, accepted risks); older rows are gate decisions."""
    for column in _who_columns():
        kind = column.type.compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE decisions ADD COLUMN {column.name} {kind}"))
    conn.execute(sa.update(decisions).values(kind=DecisionKind.GATE.value))


MIGRATIONS: list[Callable[[Connection], None]] = [_migration_1, _migration_2, _migration_3, _migration_4]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    """The schema version of the database behind `conn`; 0 for an empty database."""
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(sa.select(schema_version.c.version)).scalar_one())


def migrate(engine: Engine, target: int = SCHEMA_VERSION) -> int:
    """Apply the missing migrations up to `target`; returns the version the database is at."""
    if target > SCHEMA_VERSION:
        raise RegistryError(f"schema version {target} does not exist; this labline knows up to {SCHEMA_VERSION}")
    while True:
        with engine.connect().execution_options(registry_write=True) as conn, conn.begin():
            _serialize_writers(conn)
            found = current_version(conn)  # re-read under the lock: another process may have migrated
            if found > SCHEMA_VERSION:
                raise RegistryError(
                    f"registry database {engine.url.render_as_string(hide_password=True)} has schema version "
                    f"{found}, newer than this labline understands ({SCHEMA_VERSION}); upgrade labline"
                )
            if found >= target:
                return found
            MIGRATIONS[found](conn)
            conn.execute(sa.update(schema_version).values(version=found + 1))
