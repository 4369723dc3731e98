"""Alerts: what the monitor found wrong, recorded locally and optionally sent to a webhook.

Every alert is appended to a JSON-lines log (`LABLINE_ALERTS` or `<root>/.labline/alerts.jsonl`),
one line per alert, before any delivery is tried, so an unreachable webhook loses nothing.
The webhook receives one JSON POST per monitoring run: `{"source", "status", "alerts": [...],
"report"}`; a non-2xx answer or a network error is reported back, never raised.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

KINDS = ("dataset_drift", "prediction_drift", "performance_decay", "data_quality")


class AlertRule(StrEnum):
    """Which rule raised an alert (docs/monitoring.md states each one's threshold)."""

    FEATURE_EFFECT = "feature_effect"  # one feature drifted by more than the declared effect size
    IMPORTANT_FEATURE = "important_feature"  # a feature that carries weight in the model drifted
    SHARE_OF_FEATURES = "share_of_features"  # at least drift_share of the tested features drifted
    PREDICTION_DRIFT = "prediction_drift"  # the model's outputs drifted
    DATA_QUALITY = "data_quality"  # columns absent or values outside the declaration
    PERFORMANCE_DECAY = "performance_decay"  # labelled rows show a worse error than held out

    @property
    def kind(self) -> str:
        """The alert kind a rule files under (the three feature rules are all dataset drift)."""
        return "dataset_drift" if self in FEATURE_RULES else self.value


FEATURE_RULES = (AlertRule.FEATURE_EFFECT, AlertRule.IMPORTANT_FEATURE, AlertRule.SHARE_OF_FEATURES)


@dataclass
class Alert:
    kind: str  # one of KINDS
    message: str
    details: dict = field(default_factory=dict)
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    source: str = ""  # what was monitored: "requests" or a file
    model: str = ""  # the model version or artifact the data was compared for
    rule: AlertRule | None = None  # which rule fired (None in logs written before rules existed)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"alert kind {self.kind!r} is not one of {KINDS}")
        if self.rule is not None:
            try:
                self.rule = AlertRule(self.rule)
            except ValueError:
                raise ValueError(f"alert rule {self.rule!r} is not one of {[r.value for r in AlertRule]}") from None
            if self.rule.kind != self.kind:
                raise ValueError(f"alert rule {self.rule} files under {self.rule.kind!r}, not {self.kind!r}")

    @classmethod
    def of(cls, rule: AlertRule, message: str, details: dict, **common) -> Alert:
        """An alert raised by `rule`, filed under the rule's kind."""
        return cls(rule.kind, message, details, rule=rule, **common)


@dataclass
class Delivery:
    url: str
    ok: bool
    status_code: int | None = None
    error: str = ""


def default_alert_log() -> Path:
    from labline.paths import alert_log

    return alert_log()


def record_alerts(alerts: list[Alert], path: str | Path | None = None) -> Path:
    """Append the alerts to the JSON-lines log; returns its path."""
    path = Path(path or default_alert_log())
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        for alert in alerts:
            handle.write(json.dumps(asdict(alert), default=str) + "\n")
    return path


def read_alerts(path: str | Path | None = None) -> list[Alert]:
    """Every recorded alert, oldest first (an absent log means none)."""
    path = Path(path or default_alert_log())
    if not path.exists():
        return []
    return [Alert(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def send_webhook(
    url: str, alerts: list[Alert], status: str, source: str, report: str = "", timeout: float = 10.0
) -> Delivery:
    """POST the run's alerts as JSON to `url`; the Delivery says whether it was accepted."""
    import httpx

    if not url.startswith(("http://", "https://")):
        return Delivery(url, False, error=f"webhook URL {url!r} must start with http:// or https://")
    body = {"source": source, "status": status, "report": report, "alerts": [asdict(a) for a in alerts]}
    try:
        response = httpx.post(url, json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        return Delivery(url, False, error=f"{type(exc).__name__}: {exc}")
    ok = 200 <= response.status_code < 300
    return Delivery(url, ok, response.status_code, "" if ok else f"HTTP {response.status_code}: {response.text[:200]}")
