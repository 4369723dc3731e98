"""A model card (Mitchell et al., 2019) filled from a run's facts, as Markdown.

Every section is present; each says what the run knows, and says plainly when the run does not
know something (for example, no sensitive attributes were declared), instead of template text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

SECTIONS = (
    "Model Details", "Intended Use", "Factors", "Metrics", "Evaluation Data", "Training Data",
    "Quantitative Analyses", "Ethical Considerations", "Caveats and Recommendations",
)


@dataclass
class ModelFacts:
    """What the audit knows about a model, gathered from its artifact and the run."""

    model_name: str
    model_kind: str
    parameters: dict[str, Any]
    dataset: str
    dataset_description: str
    task: str
    labels: list[str]
    features: list[str]
    data_fingerprint: str
    train_rows: int
    test_rows: int
    artifact_sha256: str
    metrics: dict[str, float]
    per_class: pd.DataFrame | None = None
    slices: pd.DataFrame | None = None
    worst_slice: dict | None = None
    sensitive: list[str] = field(default_factory=list)
    disparities: pd.DataFrame | None = None  # group, attribute, metric, ratio, passed
    failing_disparities: list[str] = field(default_factory=list)
    created: str = ""
    run_id: str = ""
    git_sha: str | None = None


def _table(frame: pd.DataFrame | None, limit: int = 40) -> str:
    if frame is None or frame.empty:
        return "_none_"
    frame = frame.head(limit)
    cols = list(frame.columns)
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def render_model_card(f: ModelFacts) -> str:
    """The card as Markdown, with every section of Mitchell et al. 2019."""
    metric_lines = "\n".join(f"- **{k}**: {v:.4f}" for k, v in f.metrics.items() if isinstance(v, (int, float)))
    params = ", ".join(f"`{k}={v}`" for k, v in sorted(f.parameters.items())) or "defaults"
    if f.sensitive:
        factors = (f"Sensitive attributes audited: {', '.join(f.sensitive)}. Slices are evaluated on every "
                   f"categorical feature and quantile bins of numeric features.")
        fairness = ("Disparities outside [0.8, 1.25] against the reference group: "
                    + (", ".join(f.failing_disparities) if f.failing_disparities else "none") + ".")
    else:
        factors = ("No sensitive attributes are declared for this data set, so no group-fairness audit applies; "
                   "slices are evaluated on quantile bins of each numeric feature and every categorical feature.")
        fairness = "No group disparities were computed (no sensitive attributes declared)."
    worst = (f"Worst slice: `{f.worst_slice['feature']} = {f.worst_slice['value']}` "
             f"(n={f.worst_slice['count']}, " + ", ".join(f"{k}={v:.3f}" for k, v in f.worst_slice.items()
                                                       if isinstance(v, float)) + ")") if f.worst_slice else ""
    parts = [
        f"# Model card: {f.model_name}",
        "## Model Details",
        f"- Model: {f.model_kind} ({f.task}), parameters: {params}\n- Run: `{f.run_id or 'interactive'}`, "
        f"created {f.created}, code revision `{f.git_sha or 'unknown'}`\n- Artifact SHA-256: `{f.artifact_sha256}`",
        "## Intended Use",
        f"Predict `{'`, `'.join(f.labels) if f.labels else 'the target'}` from {len(f.features)} features "
        f"({', '.join(f.features)}) of the `{f.dataset}` data set. Teaching and demonstration of a "
        f"reproducible notebook pipeline; not validated for decisions about people.",
        "## Factors",
        factors,
        "## Metrics",
        metric_lines or "_no metrics_",
        "## Evaluation Data",
        f"{f.test_rows} held-out rows of `{f.dataset}` (same split for every model of the run), "
        f"data fingerprint `{f.data_fingerprint[:16]}`.",
        "## Training Data",
        f"{f.train_rows} rows of `{f.dataset}`: {f.dataset_description}",
        "## Quantitative Analyses",
        "### Per class\n" + _table(f.per_class),
        "### Slices\n" + worst + "\n\n" + _table(f.slices),
    ]
    if f.disparities is not None:
        parts.append("### Group disparities\n" + _table(f.disparities))
    parts += [
        "## Ethical Considerations",
        fairness,
        "## Caveats and Recommendations",
        f"Evaluated on {f.test_rows} rows only; slices flagged as small have too few rows to judge. "
        "Re-audit after retraining or when monitoring reports drift.",
    ]
    return "\n\n".join(parts) + "\n"
