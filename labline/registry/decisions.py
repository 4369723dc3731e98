"""The registry's audit trail: one typed record per alias decision, with who, when and why.

Every alias move is a decision: the gate's verdict (`promote`), a risk accepted against the gate
(`promote --accept`), a move by hand (`alias`, `alias champion --force --reason`) and a removal.
Who is `$LABLINE_USER`, else the operating system's user.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import Any

from labline.registry.db import DecisionKind, RegistryError
from labline.registry.gate import ARTIFACT_RULE, CANDIDATE_RULE, Check

__all__ = ["AcceptedRisk", "DecisionKind", "DecisionRecord", "check_reason", "current_user"]

USER_VARIABLE = "LABLINE_USER"
MAX_REASON = 2000
# The gate cannot be overruled on these: a tampered artifact, or no candidate at all.
NOT_ACCEPTABLE = frozenset({ARTIFACT_RULE, CANDIDATE_RULE})


def current_user() -> str:
    """Who is deciding: $LABLINE_USER, else the operating system's user."""
    named = os.environ.get(USER_VARIABLE, "").strip()
    if named:
        return named
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return f"uid {os.getuid()}"


def check_reason(reason: str | None, what: str, option: str = "--reason") -> str:
    """A reason a person gives: non-empty text of at most MAX_REASON characters."""
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise RegistryError(f'{what} needs a reason: add {option} "WHY" (e.g. {option} "rollback after incident 12")')
    if len(text) > MAX_REASON:
        raise RegistryError(f"{what}: the reason has {len(text)} characters, at most {MAX_REASON} are kept")
    return text


@dataclass(frozen=True)
class AcceptedRisk:
    """A version promoted although the gate refused it: the reason, who, when and what failed."""

    version: int
    alias: str
    scope: str | None
    reason: str
    who: str
    when: str
    failed: tuple[Check, ...]

    def failed_rules(self) -> str:
        return ", ".join(c.rule for c in self.failed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "alias": self.alias,
            "scope": self.scope,
            "reason": self.reason,
            "who": self.who,
            "when": self.when,
            "failed_checks": [vars(c) for c in self.failed],
        }


@dataclass(frozen=True)
class DecisionRecord:
    """One row of `decisions`. Rows written before migration 4 read as gate decisions by nobody named."""

    id: int
    created: str
    alias: str
    version: int | None
    previous: int | None
    metric: str | None
    promoted: bool
    checks: tuple[Check, ...]
    scope: str | None = None
    kind: DecisionKind = DecisionKind.GATE
    who: str | None = None
    why: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DecisionRecord:
        checks = tuple(Check(r["rule"], bool(r["passed"]), r["reason"]) for r in row.get("reasons") or [])
        return cls(
            id=row["id"],
            created=row["created"],
            alias=row["alias"],
            version=row["version"],
            previous=row["previous"],
            metric=row["metric"],
            promoted=bool(row["promoted"]),
            checks=checks,
            scope=row.get("scope"),
            kind=DecisionKind(row.get("kind") or DecisionKind.GATE),
            who=row.get("who"),
            why=row.get("why"),
        )

    @property
    def accepted_risk(self) -> AcceptedRisk | None:
        if self.kind != DecisionKind.ACCEPTED or not self.promoted or self.version is None:
            return None
        failed = tuple(c for c in self.checks if not c.passed)
        return AcceptedRisk(self.version, self.alias, self.scope, self.why or "", self.who or "", self.created, failed)
