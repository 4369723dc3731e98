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
from pathlib import Path
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
from labline.registry.decisions import (
    NOT_ACCEPTABLE,
    AcceptedRisk,
    DecisionKind,
    DecisionRecord,
    check_reason,
    current_user,
)
from labline.registry.gate import (
    CANDIDATE_RULE,
    Check,
    Decision,
    GatePolicy,
    default_metric,
    evaluate,
    higher_is_better,
)
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

    @classmethod
    def existing(cls, url: str | None = None) -> Registry | None:
        """The registry at `url` if there is one (a SQLite file that exists, or a server); nothing is created."""
        url = url or default_url()
        parsed = sa.engine.make_url(url)
        if parsed.get_backend_name() == "sqlite" and not (parsed.database and Path(parsed.database).is_file()):
            return None
        return cls(url)

    def close(self) -> None:
        """Close the database connections now (a short-lived reader, e.g. the report)."""
        self.engine.dispose()

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

    def decisions(self, limit: int | None = None) -> list[DecisionRecord]:
        """Every alias decision (gate, accepted risk, by hand, removal), newest first."""
        query = sa.select(decisions).order_by(decisions.c.id.desc())
        if limit:
            query = query.limit(limit)
        with read_transaction(self.engine) as conn:
            return [DecisionRecord.from_row(row._asdict()) for row in conn.execute(query)]

    def accepted_risks(self, version: int | None = None, run_id: str | None = None) -> list[AcceptedRisk]:
        """Risks accepted by `promote --accept` (for one version, or the versions of one run), newest first."""
        query = sa.select(decisions).where(decisions.c.kind == DecisionKind.ACCEPTED.value, decisions.c.promoted)
        if version is not None:
            query = query.where(decisions.c.version == int(version))
        if run_id is not None:
            of_run = sa.select(model_versions.c.version).where(model_versions.c.run_id == run_id)
            query = query.where(decisions.c.version.in_(of_run))
        with read_transaction(self.engine) as conn:
            rows = conn.execute(query.order_by(decisions.c.id.desc()))
            records = [DecisionRecord.from_row(row._asdict()) for row in rows]
        return [r.accepted_risk for r in records if r.accepted_risk is not None]

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

    @staticmethod
    def _holder(conn: Connection, alias: str, scope: str | None) -> int | None:
        query = sa.select(aliases.c.version).where(aliases.c.alias == alias, aliases.c.scope == scope)
        return conn.execute(query).scalar()

    @staticmethod
    def _record(conn: Connection, kind: DecisionKind, decision: Decision, previous: int | None, why=None) -> None:
        """One row of the audit trail, written in the transaction that moved (or kept) the alias."""
        conn.execute(
            sa.insert(decisions).values(
                created=decision.accepted.when if decision.accepted else _now(),
                alias=decision.alias,
                version=decision.candidate.version if decision.candidate else None,
                previous=previous,
                metric=decision.metric or None,
                promoted=decision.promoted,
                reasons=[vars(c) for c in decision.checks],
                scope=decision.scope,
                kind=kind.value,
                who=decision.accepted.who if decision.accepted else current_user(),
                why=why,
            )
        )

    def set_alias(self, alias: str, version: int, reason: str | None = None, force: bool = False) -> ModelVersion:
        """Point `alias` of the version's data set at `version` without the gate (the gate is `promote`).

        The artifact is verified first; the move is recorded as a decision. A forced move needs a reason.
        """
        from labline.registry.integrity import artifact_check, verify

        _check_alias(alias)
        why = check_reason(reason, f"moving {alias!r} with --force") if force or reason is not None else None
        with write_transaction(self.engine) as conn:
            found = self._get(conn, version)
            verify(found)
            previous = self._holder(conn, alias, found.scope or DEFAULT_SCOPE)
            self._set_alias(conn, alias, found)
            moved = Decision(alias, "", found, None, [artifact_check(found)], scope=found.scope or DEFAULT_SCOPE)
            self._record(conn, DecisionKind.FORCED if force else DecisionKind.MOVED, moved, previous, why)
            return self._get(conn, version)

    def remove_alias(self, alias: str, scope: str | None = None, reason: str | None = None) -> str:
        """Remove `alias` (of `scope`, or of the only data set holding it), as a decision; returns that scope."""
        named, alias = split_ref(alias)
        why = check_reason(reason, f"removing {alias!r}") if reason is not None else None
        with write_transaction(self.engine) as conn:
            held = self._resolve(conn, alias, named or scope)
            conn.execute(sa.delete(aliases).where(aliases.c.alias == alias, aliases.c.scope == held.scope))
            removed = Decision(alias, "", None, None, [], scope=held.scope)
            self._record(conn, DecisionKind.REMOVED, removed, held.version, why)
            return held.scope

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
        accept: str | None = None,
    ) -> Decision:
        """Give `alias` of one data set to `version` (or its best version that passes the gate).

        The data set (`scope`) is the version's, else the one given, else the registry's only one;
        candidates and the current holder are taken from it alone. The chosen candidate's artifact
        is verified file by file. One transaction: the holder is read under the write lock, the
        alias moved and the decision recorded together. Refusals are recorded too; a dry run
        records and moves nothing. `accept` (a reason) promotes a candidate the gate refused,
        unless its artifact failed verification; the accepted risk is recorded with who and when.
        """
        from labline.registry.integrity import artifact_check

        _check_alias(alias)
        reason = check_reason(accept, "accepting a risk", "--accept") if accept is not None else None
        transaction = read_transaction if dry_run else write_transaction
        with transaction(self.engine) as conn:
            scope = self._promotion_scope(conn, scope, version)
            held = self._holder(conn, alias, scope)
            incumbent = self._get(conn, held) if held is not None else None
            if version is not None:
                candidates = [self._get(conn, version)]
            else:
                candidates = self._versions(conn, model_versions.c.scope == scope)
            task = incumbent.task if incumbent else (candidates[-1].task if candidates else None)
            policy = GatePolicy(metric or default_metric(task), margin, slice_tolerance)
            decision = self._decide(alias, policy, candidates, incumbent, explicit=version is not None)
            decision.dry_run, decision.scope = dry_run, scope
            if decision.candidate is not None:
                decision.checks.insert(0, artifact_check(decision.candidate))
            if reason is not None:
                decision.accepted = self._accepted(decision, reason)
            if dry_run:
                return decision
            if decision.promoted:
                self._set_alias(conn, alias, decision.candidate)
            kind = DecisionKind.ACCEPTED if decision.accepted else DecisionKind.GATE
            self._record(conn, kind, decision, held, reason if decision.accepted else None)
            return decision

    @staticmethod
    def _accepted(decision: Decision, reason: str) -> AcceptedRisk | None:
        """The risk a person accepts: the gate's failed checks, if none of them is one that cannot be accepted."""
        failed = tuple(c for c in decision.checks if not c.passed)
        if decision.candidate is None or not failed or any(c.rule in NOT_ACCEPTABLE for c in failed):
            return None
        return AcceptedRisk(
            decision.candidate.version, decision.alias, decision.scope, reason, current_user(), _now(), failed
        )

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
            self._record(conn, DecisionKind.GATE, decision, held)
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
            return Decision(alias, policy.metric, None, incumbent, [Check(CANDIDATE_RULE, False, why)])
        considered = [(c, evaluate(c, incumbent, alias, policy)) for c in candidates]
        chosen = next(((c, checks) for c, checks in considered if all(k.passed for k in checks)), considered[0])
        return Decision(alias, policy.metric, chosen[0], incumbent, chosen[1], considered=considered)

    # ---- loading -----------------------------------------------------------------------------
    def load_model(self, ref: str, scope: str | None = None):
        """(version, LoadedModel) for an alias or version number; the artifact must match its registered hash."""
        from labline.models.artifact import MANIFEST, ArtifactError, load_model
        from labline.registry.integrity import verify

        version = self.resolve(ref, scope)
        path = Path(version.artifact_path)
        manifest = path / MANIFEST
        verify(version)
        try:
            model = load_model(path)
        except ArtifactError as exc:
            raise RegistryError(f"{version.label}: {exc}") from exc
        if model.sha256 != version.artifact_sha256:  # changed between the check and the load
            raise RegistryError(f"{version.label}: artifact file {manifest} changed while loading: refused")
        return version, model
