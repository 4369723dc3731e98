"""Everything a running service needs to know, in one dataclass the tests build themselves.

Settings travel to uvicorn worker processes as JSON in an environment variable, because
`--workers N` starts fresh interpreters that import the app factory by name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from labline import paths

SETTINGS_ENV = paths.SERVE_SETTINGS_ENV


def default_request_log() -> Path:
    """`LABLINE_REQUEST_LOG` or `<project_root>/.labline/requests.db`."""
    return paths.request_log()


@dataclass
class ServeSettings:
    """How to serve: which models, where to log, and the limits on what a client may send.

    `alias`, `challenger` and `shadow` are registry references (an alias or a version number as
    text) or, when `model_dir` is set or the reference is an existing folder, artifact folders.
    """

    alias: str = "champion"
    model_dir: str | None = None  # serve this artifact folder instead of a registry alias
    challenger: str | None = None
    split: float = 0.1  # share of client keys routed to the challenger
    shadow: str | None = None
    registry_url: str | None = None  # None: the registry's own default
    request_log: str = field(default_factory=lambda: str(default_request_log()))
    admin_token: str | None = field(default_factory=paths.admin_token)
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch_records: int = 50_000
    synchronous: str = "NORMAL"  # SQLite synchronous pragma; WAL + NORMAL survives a killed process
    commit_window_ms: float = 0.0  # extra wait for rows to join a commit (0: take what is queued)

    def __post_init__(self) -> None:
        if not 0.0 <= self.split <= 1.0:
            raise ValueError(f"split must be between 0 and 1, got {self.split}")
        if self.synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {self.synchronous!r}")
        if self.max_body_bytes < 1024 or self.max_batch_records < 1:
            raise ValueError("max_body_bytes must be at least 1024 and max_batch_records at least 1")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        return cls(**json.loads(text))

    @classmethod
    def from_env(cls) -> ServeSettings:
        text = paths.serve_settings_json()
        return cls.from_json(text) if text else cls()
