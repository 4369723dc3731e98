"""A model card (Mitchell et al., 2019) filled from a run's facts, as Markdown.

Every section is present; each says what the run knows, and says plainly when the run does not
know something (for example, no sensitive attributes were declared), instead of template text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from labline.registry.decisions import AcceptedRisk

SECTIONS = (
    "Model Details",
    "Intended Use",
    "Factors",
    "Metrics",
    "Evaluation Data",
    "Training Data",
    "Quantitative Analyses",
    "Ethical Considerations",
    "Caveats and Recommendations",
)
METRIC_MEANINGS = {
    "accuracy": "share of rows predicted correctly",
    "precision": "of the rows predicted positive, the share that are",
    "recall": "of the positive rows, the share found",
    "f1": "harmonic mean of precision and recall",
    "roc_auc": "probability that a random positive row scores above a random negative one",
    "mae": "mean absolute error, in the target's unit",
    "rmse": "root mean squared error, in the target's unit (weighs large errors more)",
    "r2": "share of the target's variance explained",
}
RATE_COLUMNS = ["attribute", "group", "size", "prevalence", "ppr", "tpr", "fpr", "fnr", "precision"]
DISPARITY_COLUMNS = [
    "attribute",
    "group",
    "reference_group",
    "metric",
    "value",
    "reference_value",
    "ratio",
    "ci_low",
    "ci_high",
    "passed",
    "judged",
    "group_size",
]


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
    target: str = ""
    positive_label: str | None = None
    data_source: str = ""
    group_rates: pd.DataFrame | None = None  # attribute, group, size and the rates
    reference_groups: dict[str, str] = field(default_factory=dict)
    fairness_bounds: tuple[float, float] = (0.8, 1.25)
    min_group_size: int = 30
    min_slice_count: int = 30
    audit_passed: bool | None = None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.3f}"
    return "n/a" if value is None else str(value)


def _table(frame: pd.DataFrame | None, limit: int = 60, columns: list[str] | None = None) -> str:
    if frame is None or frame.empty:
        return "_none_"
    if columns:
        frame = frame[[c for c in columns if c in frame.columns]]
    more = len(frame) - limit
    frame = frame.head(limit)
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    if more > 0:
        lines.append(f"\n_{more} more rows in the slice table file_")
    return "\n".join(lines)


def _worst(f: ModelFacts) -> str:
    if not f.worst_slice:
        return "No slice could be judged."
    figures = ", ".join(f"{k} {v:.3f}" for k, v in f.worst_slice.items() if isinstance(v, float))
    return (
        f"Worst slice: `{f.worst_slice['feature']} = {f.worst_slice['value']}` (n={f.worst_slice['count']}, {figures})."
    )


def _factors(f: ModelFacts) -> str:
    if not f.sensitive:
        return (
            "No sensitive attributes are declared for this data set, so no group-fairness audit applies. "
            "Slices are evaluated on every categorical feature and on quantile bins of each numeric feature."
        )
    lines = [f"Sensitive attributes audited for bias: {', '.join(f'`{a}`' for a in f.sensitive)}."]
    if f.group_rates is not None and not f.group_rates.empty:
        for attribute in f.sensitive:
            groups = f.group_rates[f.group_rates["attribute"] == attribute]
            listing = ", ".join(f"{g} ({n})" for g, n in zip(groups["group"], groups["size"]))
            lines.append(
                f"- `{attribute}`: groups (held-out rows) {listing}; reference group "
                f"`{f.reference_groups.get(attribute, 'n/a')}`."
            )
    in_features = [a for a in f.sensitive if a in f.features]
    if in_features:
        lines.append(f"The model takes {', '.join(f'`{a}`' for a in in_features)} as input features.")
    lines.append("Slices are evaluated on every categorical feature and on quantile bins of each numeric feature.")
    return "\n".join(lines)


def _metrics(f: ModelFacts) -> str:
    lines = []
    for name, value in f.metrics.items():
        if isinstance(value, (int, float)):
            meaning = METRIC_MEANINGS.get(name, "")
            lines.append(f"- **{name}**: {value:.4f}" + (f" ({meaning})" if meaning else ""))
    if f.task == "classification" and f.positive_label is not None:
        lines.append(f"\nPrecision, recall and F1 are for the positive class `{f.positive_label}`.")
    elif f.task == "classification":
        lines.append("\nPrecision, recall and F1 are macro averages over the classes.")
    if f.sensitive:
        low, high = f.fairness_bounds
        lines.append(
            f"Group rates: TPR, FPR, FNR, precision, predicted positive rate (ppr) and prevalence. "
            f"A disparity is a group's rate over the reference group's; it passes within "
            f"[{low}, {high}]. Groups under {f.min_group_size} rows are reported but not judged."
        )
    return "\n".join(lines) or "_no metrics were computed_"


def _ethics(f: ModelFacts) -> str:
    if not f.sensitive:
        return (
            "No group disparities were computed (no sensitive attributes declared); the data set "
            f"`{f.dataset}` describes no people, or none were declared."
        )
    verdict = "passed" if f.audit_passed else "FAILED"
    lines = [f"The bias audit {verdict}."]
    if f.failing_disparities:
        lines.append("Disparities outside the bounds: " + "; ".join(f.failing_disparities) + ".")
        lines.append(
            "A model with failing disparities treats these groups measurably differently from the "
            "reference group; do not use it for decisions about people without review."
        )
    else:
        lines.append("Every judged disparity lies within the bounds.")
    return "\n".join(lines)


def _caveats(f: ModelFacts) -> str:
    lines = [f"Evaluated on {f.test_rows} held-out rows of one data set only."]
    if f.slices is not None and not f.slices.empty and "small" in f.slices.columns:
        small = f.slices[f.slices["small"]]
        if len(small):
            names = ", ".join(f"{r.feature}={r.value} ({r.count})" for r in small.head(12).itertuples())
            lines.append(
                f"{len(small)} slices have fewer than {f.min_slice_count} rows and are too small to "
                f"judge: {names}{' ...' if len(small) > 12 else ''}."
            )
    if f.disparities is not None and not f.disparities.empty and "judged" in f.disparities.columns:
        unjudged = sorted(set(f.disparities.loc[~f.disparities["judged"], "group"]))
        if unjudged:
            lines.append(
                f"Groups too small to judge (under {f.min_group_size} rows): {', '.join(unjudged)}; "
                "collect more data about them before trusting the model for them."
            )
    lines.append("Re-audit after retraining, and when monitoring reports drift.")
    return "\n".join(lines)


def render_model_card(f: ModelFacts) -> str:
    """The card as Markdown, with every section of Mitchell et al. 2019."""
    params = ", ".join(f"`{k}={v}`" for k, v in sorted(f.parameters.items())) or "the estimator's defaults"
    target = f"`{f.target}`" if f.target else "the target"
    predicts = f"{target} (classes {', '.join(f'`{x}`' for x in f.labels)})" if f.labels else f"{target} (a number)"
    parts = [
        f"# Model card: {f.model_name}",
        "## Model Details",
        f"- Model: {f.model_kind} ({f.task}), parameters: {params}\n- Run: `{f.run_id or 'interactive'}`, "
        f"created {f.created}, code revision `{f.git_sha or 'unknown'}`\n- Artifact SHA-256: `{f.artifact_sha256}`",
        "## Intended Use",
        f"Predicts {predicts} from {len(f.features)} features ({', '.join(f.features)}) of the `{f.dataset}` "
        f"data set. Built for teaching and demonstrating a reproducible notebook pipeline; not validated "
        f"for decisions about people.",
        "## Factors",
        _factors(f),
        "## Metrics",
        _metrics(f),
        "## Evaluation Data",
        f"{f.test_rows} held-out rows of `{f.dataset}` (the same split for every model of the run), "
        f"data fingerprint `{f.data_fingerprint[:16]}`.",
        "## Training Data",
        f"{f.train_rows} rows of `{f.dataset}`: {f.dataset_description}"
        + (f" Source: {f.data_source}." if f.data_source else ""),
        "## Quantitative Analyses",
    ]
    if f.per_class is not None:
        parts.append("### Per class\n" + _table(f.per_class))
    parts.append("### Slices\n" + _worst(f) + "\n\n" + _table(f.slices))
    if f.group_rates is not None and not f.group_rates.empty:
        parts.append("### Rates per group\n" + _table(f.group_rates, columns=RATE_COLUMNS))
    if f.disparities is not None and not f.disparities.empty:
        parts.append("### Group disparities\n" + _table(f.disparities, limit=200, columns=DISPARITY_COLUMNS))
    parts += ["## Ethical Considerations", _ethics(f), "## Caveats and Recommendations", _caveats(f)]
    return "\n\n".join(parts) + "\n"


ACCEPTED_RISK = "Accepted Risk"
_ACCEPTED_SECTION = re.compile(rf"## {ACCEPTED_RISK}\n.*?(?=^## |\Z)", re.S | re.M)


def accepted_risk_markdown(risk: AcceptedRisk) -> str:
    """The card's section for a version promoted although the gate refused it."""
    failed = "\n".join(f"- **{c.rule}**: {c.reason}" for c in risk.failed)
    return (
        f"## {ACCEPTED_RISK}\n\n"
        f"The promotion gate refused v{risk.version} as `{risk.scope}@{risk.alias}`; it was promoted "
        f"because a person accepted the risk.\n\n"
        f"- Reason: {risk.reason}\n- Accepted by: {risk.who}\n- When: {risk.when}\n\n"
        f"Failed checks:\n\n{failed}\n\n"
    )


def record_accepted_risk(card: str | Path, risk: AcceptedRisk) -> None:
    """Write the accepted risk into a rendered card, before Model Details (replacing an earlier one)."""
    path = Path(card)
    text = _ACCEPTED_SECTION.sub("", path.read_text())
    section = accepted_risk_markdown(risk)
    head, marker, rest = text.partition("## Model Details")
    path.write_text(head + section + marker + rest if marker else text.rstrip("\n") + "\n\n" + section)
