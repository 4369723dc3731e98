"""The A/B report: per arm, how many requests, how often the other arm's model agrees, accuracy
where ground truth has come back (`labline feedback`), and a two-proportion z-test.

Agreement is counterfactual: each arm's logged inputs are scored again by the other arm's model
(the exact artifact, hash-verified), so it needs no shadow traffic. A winner is called only when
both arms have at least `min_samples` labelled requests and the difference is significant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from scipy.stats import norm

from labline.models.artifact import ArtifactError
from labline.serve.deployments import Deployment
from labline.serve.replay import load_answering_model
from labline.serve.request_log import feedback_labels, read_requests
from labline.serve.routing import CHALLENGER, CHAMPION
from labline.serve.schemas import features_frame


@dataclass
class ArmStats:
    arm: str
    model_versions: list[str]
    requests: int
    agreement: float | None  # share of this arm's requests the other arm's model answers the same way
    labelled: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


@dataclass
class ABReport:
    arms: dict[str, ArmStats]
    z: float | None = None
    p_value: float | None = None
    winner: str | None = None
    verdict: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "arms": {a: {**s.__dict__, "accuracy": s.accuracy} for a, s in self.arms.items()},
            "z": self.z,
            "p_value": self.p_value,
            "winner": self.winner,
            "verdict": self.verdict,
            "notes": self.notes,
        }


def two_proportion_z(correct_a: int, n_a: int, correct_b: int, n_b: int) -> tuple[float, float]:
    """z and two-sided p-value for H0: both arms have the same success rate (pooled variance)."""
    if n_a == 0 or n_b == 0:
        return 0.0, 1.0
    pooled = (correct_a + correct_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return 0.0, 1.0
    z = (correct_b / n_b - correct_a / n_a) / se
    return z, float(2 * norm.sf(abs(z)))


def _labelled(log: str | Path, requests: pd.DataFrame) -> pd.Series:
    return requests["request_id"].map(feedback_labels(log))


def _latest_model(log, arm_rows: pd.DataFrame, registry_url, notes: list[str]):
    last = arm_rows.iloc[-1]
    version = None if pd.isna(last["model_version"]) else int(last["model_version"])
    try:
        return load_answering_model(log, version, last["artifact_sha256"], registry_url)
    except ArtifactError as exc:
        notes.append(f"agreement not computed for the model of arm {last['arm']}: {exc}")
        return None


def ab_report(
    log: str | Path, min_samples: int = 100, alpha: float = 0.05, since=None, registry_url: str | None = None
) -> ABReport:
    requests = read_requests(log, since=since)
    requests = requests[requests["error"].isna()]
    requests = requests.assign(truth=_labelled(log, requests))
    notes: list[str] = []
    by_arm = {arm: requests[requests["arm"] == arm] for arm in (CHAMPION, CHALLENGER)}
    models = {arm: _latest_model(log, rows, registry_url, notes) if len(rows) else None for arm, rows in by_arm.items()}
    arms: dict[str, ArmStats] = {}
    for arm, rows in by_arm.items():
        other = models[CHALLENGER if arm == CHAMPION else CHAMPION]
        agreement = None
        if len(rows) and other is not None:
            deployment = Deployment(ref="ab-report", model=other, version=None, lineage={})
            predictions, _ = deployment.score(features_frame(other.spec, list(rows["payload"])))
            agreement = float((pd.Series(predictions, index=rows.index) == rows["prediction"]).mean())
        labelled = rows[rows["truth"].notna()]
        arms[arm] = ArmStats(
            arm=arm,
            requests=len(rows),
            agreement=agreement,
            labelled=len(labelled),
            correct=int((labelled["prediction"].astype(str) == labelled["truth"].astype(str)).sum()),
            model_versions=sorted(
                {
                    str(v) if not pd.isna(v) else f"sha256:{s[:12]}"
                    for v, s in zip(rows["model_version"], rows["artifact_sha256"])
                }
            ),
        )
    report = ABReport(arms=arms, notes=notes)
    a, b = arms[CHAMPION], arms[CHALLENGER]
    report.z, report.p_value = two_proportion_z(a.correct, a.labelled, b.correct, b.labelled)
    if min(a.labelled, b.labelled) < min_samples:
        report.verdict = (
            f"no winner called: labelled requests champion {a.labelled}, challenger {b.labelled}; "
            f"each arm needs at least {min_samples}"
        )
    elif report.p_value < alpha:
        report.winner = CHALLENGER if b.accuracy > a.accuracy else CHAMPION
        report.verdict = f"{report.winner} is more accurate (p = {report.p_value:.3g} < {alpha})"
    else:
        report.verdict = f"no significant difference (p = {report.p_value:.3g} >= {alpha})"
    return report
