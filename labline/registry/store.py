"""Registry: model versions, aliases and promotion decisions in one database.

    >>> reg = Registry("sqlite:///:memory:")
    >>> reg.versions()
    []

Every write is one transaction that takes the write lock first (see db.py), so concurrent
`labline run`s registering and concurrent promotions leave the database consistent. Aliases are
scoped by data set (see scope.py): `iris@champion` and `census@champion` are two aliases.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from labline.registry.db import (
    RegistryError,
    aliases,
    decisions,
    default_url,
    make_engine,
    migrate,
    model_versions,
    read_transaction,
    write_transaction,
)
from labline.registry.gate import Check, Decision, GatePolicy, default_metric, evaluate, higher_is_better
from labline.registry.lineage import versions_in_run
from labline.registry.model_version import ModelVersion
from labline.registry.scope import DEFAULT_SCOPE, dataset_scope, split_ref

ALIAS_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,99}")


def _now() -> str:
    from datetime import datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def _check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_NAME.fullmatch(alias) or alias.isdigit():
        raise RegistryError(
            f"alias {alias!r} is not valid: use a letter then letters, digits, '_', '.', '-' "
            "(e.g. champion, challenger)"
        )
    return alias


class Registry:
    """The model registry at `url` (None: $LABLINE_DB or .labline/labline.db); creates or migrates it."""

    def __init__(self, url: str | None = None):
        self.url = url or default_url()
        self.engine = make_engine(self.url)
        migrate(self.engine)

    # ---- reading -----------------------------------------------------------------------------
    def _versions(self, conn: Connection, where=None) -> list[ModelVersion]:
        held: dict[int, list[str]] = {}
        for alias, version in conn.execute(sa.select(aliases.c.alias, aliases.c.version).order_by(aliases.c.alias)):
            held.setdefault(version, []).append(alias)  # an alias lives in the scope of its version
        query = sa.select(model_versions).order_by(model_versions.c.version)
        if where is not None:
            query = query.where(where)
        return [
            ModelVersion(**{**row._asdict(), "checks": row.checks or {}}, aliases=held.get(row.version, []))
            for row in conn.execute(query)
        ]

    def versions(self, scope: str | None = None) -> list[ModelVersion]:
        """Every registered version (of one data set's scope), oldest first."""
        with read_transaction(self.engine) as conn:
            return self._versions(conn, None if scope is None else model_versions.c.scope == scope)

    def scopes(self) -> list[str]:
        """The data sets that have registered versions."""
        with read_transaction(self.engine) as conn:
            return self._scopes(conn)

    @staticmethod
    def _scopes(conn: Connection) -> list[str]:
        query = sa.select(model_versions.c.scope).distinct().order_by(model_versions.c.scope)
        return [s for s in conn.execute(query).scalars() if s is not None]

    def _get(self, conn: Connection, version: int) -> ModelVersion:
        found = self._versions(conn, model_versions.c.version == int(version))
        if not found:
            last = conn.execute(sa.select(sa.func.max(model_versions.c.version))).scalar()
            known = f"versions are 1..{last}" if last else "the registry is empty (`labline register RUN`)"
            raise RegistryError(f"no model version {version}; {known}")
        return found[0]

    def get(self, version: int) -> ModelVersion:
        with read_transaction(self.engine) as conn:
            return self._get(conn, version)

    def _resolve(self, conn: Connection, ref: str, scope: str | None = None) -> ModelVersion:
        named, text = split_ref(ref)
        if named and scope and named != scope:
            raise RegistryError(f"{ref!r} names data set {named!r}, but {scope!r} was asked for")
        scope = named or scope
        number = text[1:] if text[:1] in ("v", "V") and text[1:].isdigit() else text
        if number.isdigit():
            found = self._get(conn, int(number))
            if scope and found.scope != scope:
                raise RegistryError(f"{found.label} belongs to data set {found.scope!r}, not {scope!r}")
            return found
        query = sa.select(aliases.c.scope, aliases.c.version).where(aliases.c.alias == text).order_by(aliases.c.scope)
        held = conn.execute(query if scope is None else query.where(aliases.c.scope == scope)).all()
        if not held:
            known = [
                f"{s}@{a}"
                for s, a in conn.execute(
                    sa.select(aliases.c.scope, aliases.c.alias).order_by(aliases.c.scope, aliases.c.alias)
                )
            ]
            where = f" for data set {scope!r}" if scope else ""
            raise RegistryError(
                f"{text!r} is neither a version number nor an alias{where}; aliases are {known or 'none yet'}"
            )
        if len(held) > 1:
            options = ", ".join(f"{s}@{text} (v{v})" for s, v in held)
            raise RegistryError(
                f"alias {text!r} is held in several data sets: {options}; name one (--dataset NAME, or DATASET@{text})"
            )
        return self._get(conn, held[0].version)

    def resolve(self, ref: str, scope: str | None = None) -> ModelVersion:
        """An alias ("champion", "iris@champion") or a version number as text ("3" or "v3").

        A plain alias is looked up in `scope` when given, else in whichever data set holds it
        (an error names them when several do).
        """
        with read_transaction(self.engine) as conn:
            return self._resolve(conn, ref, scope)

    def alias_table(self) -> list[dict[str, Any]]:
        """Every alias with its data set, version and time of the last move."""
        query = sa.select(aliases).order_by(aliases.c.scope, aliases.c.alias)
        with read_transaction(self.engine) as conn:
            return [row._asdict() for row in conn.execute(query)]

    def aliases(self, scope: str | None = None) -> dict[str, int]:
        """alias -> version in `scope`; without one, in the only data set that has aliases."""
        rows = self.alias_table()
        scopes = sorted({r["scope"] for r in rows})
        if scope is None and len(scopes) > 1:
            raise RegistryError(f"aliases are held in several data sets ({', '.join(scopes)}): name one")
        return {r["alias"]: r["version"] for r in rows if scope is None or r["scope"] == scope}

    def decisions(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Promotion decisions, newest first."""
        query = sa.select(decisions).order_by(decisions.c.id.desc())
        if limit:
            query = query.limit(limit)
        with read_transaction(self.engine) as conn:
            return [row._asdict() for row in conn.execute(query)]

    # ---- writing -----------------------------------------------------------------------------
    def register_run(self, manifest: dict[str, Any]) -> list[ModelVersion]:
        """Register every trained model of a succeeded run; a (run_id, step) already there is returned as is.

        A step the runner reused from an earlier run (status "cached") holds that run's artifact: when
        that artifact is registered already, its version is returned instead of a duplicate.
        """
        rows = versions_in_run(manifest)
        with write_transaction(self.engine) as conn:
            numbers = []
            for row in rows:
                reused = row.pop("reused", False)
                existing = conn.execute(
                    sa.select(model_versions.c.version).where(
                        model_versions.c.run_id == row["run_id"], model_versions.c.step == row["step"]
                    )
                ).scalar()
                if existing is None and reused:
                    existing = conn.execute(
                        sa.select(sa.func.min(model_versions.c.version)).where(
                            model_versions.c.artifact_sha256 == row["artifact_sha256"]
                        )
                    ).scalar()
                if existing is None:
                    row["scope"] = row.get("scope") or dataset_scope(row.get("dataset"))
                    existing = conn.execute(
                        sa.insert(model_versions).values(**row, registered=_now())
                    ).inserted_primary_key[0]
                numbers.append(existing)
            return [self._get(conn, n) for n in numbers]

    def _set_alias(self, conn: Connection, alias: str, version: ModelVersion) -> None:
        scope = version.scope or DEFAULT_SCOPE
        conn.execute(sa.delete(aliases).where(aliases.c.alias == alias, aliases.c.scope == scope))
        conn.execute(sa.insert(aliases).values(scope=scope, alias=alias, version=version.version, updated=_now()))

    def set_alias(self, alias: str, version: int) -> ModelVersion:
        """Point `alias` of the version's data set at `version` without the gate (the gate is `promote`)."""
        _check_alias(alias)
        with write_transaction(self.engine) as conn:
            found = self._get(conn, version)
            self._set_alias(conn, alias, found)
            return self._get(conn, version)

    def remove_alias(self, alias: str, scope: str | None = None) -> str:
        """Remove `alias` (of `scope`, or of the only data set holding it); returns that scope."""
        named, alias = split_ref(alias)
        with write_transaction(self.engine) as conn:
            scope = self._resolve(conn, alias, named or scope).scope
            conn.execute(sa.delete(aliases).where(aliases.c.alias == alias, aliases.c.scope == scope))
            return scope

    def _promotion_scope(self, conn: Connection, scope: str | None, version: int | None) -> str | None:
        """The data set a promotion moves an alias in: the version's, the one asked, or the only one."""
        if version is not None:
            return self._resolve(conn, str(version), scope).scope
        if scope is not None:
            return scope
        known = self._scopes(conn)
        if len(known) > 1:
            raise RegistryError(
                f"the registry holds models of several data sets ({', '.join(known)}): "
                "name the one to promote in (--dataset NAME)"
            )
        return known[0] if known else None

    def promote(
        self,
        alias: str = "champion",
        metric: str | None = None,
        version: int | None = None,
        margin: float = 0.0,
        slice_tolerance: float = 0.05,
        dry_run: bool = False,
        scope: str | None = None,
    ) -> Decision:
        """Give `alias` of one data set to `version` (or its best version that passes the gate).

        The data set (`scope`) is the version's, else the one given, else the registry's only one;
        candidates and the current holder are taken from it alone. One transaction: the holder is
        read under the write lock, the alias moved and the decision recorded together. Refusals
        are recorded too; a dry run records and moves nothing.
        """
        _check_alias(alias)
        transaction = read_transaction if dry_run else write_transaction
        with transaction(self.engine) as conn:
            scope = self._promotion_scope(conn, scope, version)
            held = conn.execute(
                sa.select(aliases.c.version).where(aliases.c.alias == alias, aliases.c.scope == scope)
            ).scalar()
            incumbent = self._get(conn, held) if held is not None else None
            if version is not None:
                candidates = [self._get(conn, version)]
            else:
                candidates = self._versions(conn, model_versions.c.scope == scope)
            task = incumbent.task if incumbent else (candidates[-1].task if candidates else None)
            policy = GatePolicy(metric or default_metric(task), margin, slice_tolerance)
            decision = self._decide(alias, policy, candidates, incumbent, explicit=version is not None)
            decision.dry_run, decision.scope = dry_run, scope
            if dry_run:
                return decision
            if decision.promoted:
                self._set_alias(conn, alias, decision.candidate)
            conn.execute(
                sa.insert(decisions).values(
                    created=_now(),
                    alias=alias,
                    version=decision.candidate.version if decision.candidate else None,
                    previous=held,
                    metric=policy.metric,
                    promoted=decision.promoted,
                    reasons=[vars(c) for c in decision.checks],
                    scope=scope,
                )
            )
            return decision

    def apply_decision(
        self, alias: str, version: int, checks: list[Check], metric: str, expected_holder: int | None
    ) -> Decision:
        """Record a decision reached outside `promote` (e.g. retraining judged on its own holdout rows)
        and move the alias if every check passed, but only if the alias still points at
        `expected_holder`: a decision taken against a holder that has since changed is refused.
        """
        _check_alias(alias)
        with write_transaction(self.engine) as conn:
            candidate = self._get(conn, version)
            held = conn.execute(
                sa.select(aliases.c.version).where(
                    aliases.c.alias == alias, aliases.c.scope == (candidate.scope or DEFAULT_SCOPE)
                )
            ).scalar()
            incumbent = self._get(conn, held) if held is not None else None
            checks = list(checks)
            if held != expected_holder:
                checks.append(
                    Check(
                        "holder",
                        False,
                        f"{alias!r} moved from {expected_holder} to {held} while this "
                        "decision was being made: decide again",
                    )
                )
            decision = Decision(alias, metric, candidate, incumbent, checks, scope=candidate.scope)
            if decision.promoted:
                self._set_alias(conn, alias, candidate)
            conn.execute(
                sa.insert(decisions).values(
                    created=_now(),
                    alias=alias,
                    version=candidate.version,
                    previous=held,
                    metric=metric,
                    promoted=decision.promoted,
                    reasons=[vars(c) for c in checks],
                    scope=candidate.scope,
                )
            )
            return decision

    @staticmethod
    def _decide(
        alias: str, policy: GatePolicy, candidates: list[ModelVersion], incumbent: ModelVersion | None, explicit: bool
    ) -> Decision:
        task = incumbent.task if incumbent else (candidates[-1].task if candidates else None)
        if not explicit:
            held = incumbent.version if incumbent else None
            candidates = [c for c in candidates if c.version != held and c.task == task and policy.metric in c.metrics]
            sign = 1 if higher_is_better(policy.metric) else -1
            candidates.sort(key=lambda c: (sign * c.metrics[policy.metric], c.version), reverse=True)
        if not candidates:
            why = f"no registered {task or ''} version other than the current {alias} has metric {policy.metric!r}"
            return Decision(alias, policy.metric, None, incumbent, [Check("candidate", False, why)])
        considered = [(c, evaluate(c, incumbent, alias, policy)) for c in candidates]
        chosen = next(((c, checks) for c, checks in considered if all(k.passed for k in checks)), considered[0])
        return Decision(alias, policy.metric, chosen[0], incumbent, chosen[1], considered=considered)

    # ---- loading -----------------------------------------------------------------------------
    def load_model(self, ref: str, scope: str | None = None):
        """(version, LoadedModel) for an alias or version number; the artifact must match its registered hash."""
        from pathlib import Path

        from labline.models.artifact import MANIFEST, ArtifactError, artifact_sha256, load_model

        version = self.resolve(ref, scope)
        path = Path(version.artifact_path)
        manifest = path / MANIFEST
        if not manifest.exists():
            raise RegistryError(
                f"{version.label}: artifact file {manifest} is missing (the model was moved or deleted)"
            )
        found = artifact_sha256(path)
        if found != version.artifact_sha256:
            raise RegistryError(
                f"{version.label}: artifact file {manifest} has SHA-256 {found}, registered "
                f"{version.artifact_sha256}: refused (tampered or replaced)"
            )
        try:
            model = load_model(path)
        except ArtifactError as exc:
            raise RegistryError(f"{version.label}: {exc}") from exc
        if model.sha256 != version.artifact_sha256:  # changed between the check and the load
            raise RegistryError(f"{version.label}: artifact file {manifest} changed while loading: refused")
        return version, model
