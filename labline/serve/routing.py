"""Sticky A/B routing: a client key always reaches the same arm.

The arm is a pure function of the key (a SHA-256 bucket), so it survives restarts, reloads and
`--workers N` without shared state, and the challenger's share of keys is `split` within
sampling error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from labline.serve.deployments import Deployment

CHAMPION = "champion"
CHALLENGER = "challenger"
SHADOW = "shadow"
BUCKETS = 10_000


def bucket(client_key: str) -> float:
    """A uniform number in [0, 1) fixed for this key."""
    digest = hashlib.sha256(client_key.encode("utf-8")).digest()
    return (int.from_bytes(digest[:8], "big") % BUCKETS) / BUCKETS


def choose_arm(client_key: str, split: float) -> str:
    """`challenger` for a `split` share of keys, `champion` for the rest."""
    return CHALLENGER if bucket(client_key) < split else CHAMPION


@dataclass(frozen=True)
class Routes:
    """The deployments answering now. Replaced whole on reload, so a request in flight keeps the
    set it started with and never sees half an update."""

    champion: Deployment
    challenger: Deployment | None = None
    split: float = 0.0
    shadow: Deployment | None = None

    def arm_for(self, client_key: str) -> str:
        if self.challenger is None:
            return CHAMPION
        return choose_arm(client_key, self.split)

    def deployment(self, arm: str) -> Deployment:
        return self.challenger if arm == CHALLENGER and self.challenger is not None else self.champion

    def all(self) -> dict[str, Deployment]:
        arms = {CHAMPION: self.champion, CHALLENGER: self.challenger, SHADOW: self.shadow}
        return {arm: d for arm, d in arms.items() if d is not None}
