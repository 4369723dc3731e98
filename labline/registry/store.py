"""Registry: model versions, aliases and promotion decisions in one database.

    >>> reg = Registry("sqlite:///:memory:")
    >>> reg.versions()
    []

Every write is one transaction that takes the write lock first (see db.py), so concurrent
`labline run`s registering and concurrent promotions leave the database consistent.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from labline.registry.db import (RegistryError, aliases, decisions, default_url, make_engine, migrate,
                                 model_versions, read_transaction, write_transaction)
from labline.registry.gate import Check, Decision, GatePolicy, default_metric, evaluate, higher_is_better
from labline.registry.lineage import versions_in_run
from labline.registry.model_version import ModelVersion

ALIAS_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,99}")


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_NAME.fullmatch(alias) or alias.isdigit():
        raise RegistryError(f"alias {alias!r} is not valid: use a letter then letters, digits, '_', '.', '-' "
                            "(e.g. champion, challenger)")
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
            held.setdefault(version, []).append(alias)
        query = sa.select(model_versions).order_by(model_versions.c.version)
        if where is not None:
            query = query.where(where)
        return [ModelVersion(**{**row._asdict(), "checks": row.checks or {}}, aliases=held.get(row.version, []))
                for row in conn.execute(query)]

    def versions(self) -> list[ModelVersion]:
        """Every registered version, oldest first."""
        with read_transaction(self.engine) as conn:
            return self._versions(conn)

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

    def _resolve(self, conn: Connection, ref: str) -> ModelVersion:
        text = str(ref).strip()
        number = text[1:] if text[:1] in ("v", "V") and text[1:].isdigit() else text
        if number.isdigit():
            return self._get(conn, int(number))
        version = conn.execute(sa.select(aliases.c.version).where(aliases.c.alias == text)).scalar()
        if version is None:
            known = sorted(conn.execute(sa.select(aliases.c.alias)).scalars())
            raise RegistryError(f"{text!r} is neither a version number nor an alias; aliases are {known or 'none yet'}")
        return self._get(conn, version)

    def resolve(self, ref: str) -> ModelVersion:
        """An alias name ("champion") or a version number as text ("3" or "v3")."""
        with read_transaction(self.engine) as conn:
            return self._resolve(conn, ref)

    def aliases(self) -> dict[str, int]:
        with read_transaction(self.engine) as conn:
            return dict(conn.execute(sa.select(aliases.c.alias, aliases.c.version).order_by(aliases.c.alias)).all())

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
                existing = conn.execute(sa.select(model_versions.c.version).where(
                    model_versions.c.run_id == row["run_id"], model_versions.c.step == row["step"])).scalar()
                if existing is None and reused:
                    existing = conn.execute(sa.select(sa.func.min(model_versions.c.version)).where(
                        model_versions.c.artifact_sha256 == row["artifact_sha256"])).scalar()
                if existing is None:
                    existing = conn.execute(sa.insert(model_versions).values(**row, registered=_now())
                                            ).inserted_primary_key[0]
                numbers.append(existing)
            return [self._get(conn, n) for n in numbers]

    def _set_alias(self, conn: Connection, alias: str, version: int) -> None:
        conn.execute(sa.delete(aliases).where(aliases.c.alias == alias))
        conn.execute(sa.insert(aliases).values(alias=alias, version=version, updated=_now()))

    def set_alias(self, alias: str, version: int) -> None:
        """Point `alias` at `version` without the gate (the gate is `promote`)."""
        _check_alias(alias)
        with write_transaction(self.engine) as conn:
            self._get(conn, version)
            self._set_alias(conn, alias, int(version))

    def remove_alias(self, alias: str) -> None:
        with write_transaction(self.engine) as conn:
            if conn.execute(sa.delete(aliases).where(aliases.c.alias == alias)).rowcount == 0:
                raise RegistryError(f"no alias {alias!r}")

    def promote(self, alias: str = "champion", metric: str | None = None, version: int | None = None,
                margin: float = 0.0, slice_tolerance: float = 0.05, dry_run: bool = False) -> Decision:
        """Give `alias` to `version` (or the best version that passes the gate) if the gate passes.

        One transaction: the current holder is read under the write lock, the alias moved and the
        decision recorded together. Refusals are recorded too; a dry run records and moves nothing.
        """
        _check_alias(alias)
        transaction = read_transaction if dry_run else write_transaction
        with transaction(self.engine) as conn:
            held = conn.execute(sa.select(aliases.c.version).where(aliases.c.alias == alias)).scalar()
            incumbent = self._get(conn, held) if held is not None else None
            if version is not None:
                candidates = [self._get(conn, version)]
            else:
                candidates = self._versions(conn)
            task = incumbent.task if incumbent else (candidates[-1].task if candidates else None)
            policy = GatePolicy(metric or default_metric(task), margin, slice_tolerance)
            decision = self._decide(alias, policy, candidates, incumbent, explicit=version is not None)
            decision.dry_run = dry_run
            if dry_run:
                return decision
            if decision.promoted:
                self._set_alias(conn, alias, decision.candidate.version)
            conn.execute(sa.insert(decisions).values(
                created=_now(), alias=alias, version=decision.candidate.version if decision.candidate else None,
                previous=held, metric=policy.metric, promoted=decision.promoted,
                reasons=[vars(c) for c in decision.checks]))
            return decision

    def apply_decision(self, alias: str, version: int, checks: list[Check], metric: str,
                       expected_holder: int | None) -> Decision:
        """Record a decision reached outside `promote` (e.g. retraining judged on its own holdout rows)
        and move the alias if every check passed, but only if the alias still points at
        `expected_holder`: a decision taken against a holder that has since changed is refused.
        """
        _check_alias(alias)
        with write_transaction(self.engine) as conn:
            held = conn.execute(sa.select(aliases.c.version).where(aliases.c.alias == alias)).scalar()
            candidate = self._get(conn, version)
            incumbent = self._get(conn, held) if held is not None else None
            checks = list(checks)
            if held != expected_holder:
                checks.append(Check("holder", False, f"{alias!r} moved from {expected_holder} to {held} while this "
                                                     "decision was being made: decide again"))
            decision = Decision(alias, metric, candidate, incumbent, checks)
            if decision.promoted:
                self._set_alias(conn, alias, candidate.version)
            conn.execute(sa.insert(decisions).values(
                created=_now(), alias=alias, version=candidate.version, previous=held, metric=metric,
                promoted=decision.promoted, reasons=[vars(c) for c in checks]))
            return decision

    @staticmethod
    def _decide(alias: str, policy: GatePolicy, candidates: list[ModelVersion], incumbent: ModelVersion | None,
                explicit: bool) -> Decision:
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
    def load_model(self, ref: str):
        """(version, LoadedModel) for an alias or version number; the artifact must match its registered hash."""
        from pathlib import Path

        from labline.models.artifact import MANIFEST, ArtifactError, artifact_sha256, load_model

        version = self.resolve(ref)
        path = Path(version.artifact_path)
        manifest = path / MANIFEST
        if not manifest.exists():
            raise RegistryError(f"{version.label}: artifact file {manifest} is missing (the model was moved or deleted)")
        found = artifact_sha256(path)
        if found != version.artifact_sha256:
            raise RegistryError(f"{version.label}: artifact file {manifest} has SHA-256 {found}, registered "
                                f"{version.artifact_sha256}: refused (tampered or replaced)")
        try:
            model = load_model(path)
        except ArtifactError as exc:
            raise RegistryError(f"{version.label}: {exc}") from exc
        if model.sha256 != version.artifact_sha256:  # changed between the check and the load
            raise RegistryError(f"{version.label}: artifact file {manifest} changed while loading: refused")
        return version, model
