"""What the log is handed per model call (`Scoring`), and how its values become text."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

# The columns of an `answers` row a Scoring's `answers` tuples carry, in this order.
ANSWER_COLUMNS = (
    "request_id", "score_index", "client_key", "payload", "prediction", "probabilities",
    "latency_ms", "shadow", "error",
)  # fmt: skip


@dataclass
class Scoring:
    """One model call's answers as the log stores them: the call's shared facts once, and per record
    either

    - `answers`: tuples in ANSWER_COLUMNS order, for requests answered one by one and shadow
      copies (payload, prediction and probabilities as JSON text, client_key None when it is
      the request id), or
    - `records`: a batch as three columns (payload, prediction and probabilities texts), in
      record order, so the rows are assembled by `zip` in C rather than one by one; record i's
      request id is `<batch_id>-<i>` and its client key and latency are the scoring's.

    Requests scored together (micro-batching) each append a Scoring with the same `score_batch`;
    the log keeps one scorings row for them.
    """

    score_batch: str
    time: str
    model_version: int | None
    artifact_sha256: str
    arm: str
    answers: list[tuple] = field(default_factory=list)
    records: tuple[list[str], list[str], list[str | None]] = field(default_factory=lambda: ([], [], []))
    batch_id: str | None = None
    client_key: str | None = None
    latency_ms: float | None = None

    @classmethod
    def by(cls, deployment, arm: str, score_batch: str, time: str, **rows) -> Scoring:
        return cls(score_batch, time, deployment.version, deployment.sha256, arm, **rows)

    def __len__(self) -> int:
        return len(self.answers) + len(self.records[0])


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dumps(value: Any) -> str:
    """Compact JSON with the shortest round-trip float text, so probabilities read back bit for bit.

    orjson's text parses back to the same values as `json.dumps`'s, at a tenth of the cost, which
    matters when a batch logs 10,000 payloads. It writes NaN as null: the service refuses
    non-finite inputs and answers (a 422) before anything reaches the log.
    """
    return orjson.dumps(value, option=_OPTIONS).decode()
