"""Bias audit: per-group confusion-matrix rates and Aequitas-style disparities.

For each sensitive attribute, the held-out rows are grouped by its value and each group's
confusion matrix is counted (with fairlearn's MetricFrame). From the counts come the rates:

    tpr = tp / (tp + fn)          fnr = fn / (tp + fn)         fpr = fp / (fp + tn)
    precision = tp / (tp + fp)    ppr = (tp + fp) / n          prevalence = (tp + fn) / n

A rate whose denominator is zero is undefined (NaN), never silently 0. Bootstrap percentile
intervals (rows resampled within each group) say how noisy each rate is.

A disparity is a group's rate divided by the reference group's (the largest group unless
configured), as Aequitas defines it; it passes within [0.8, 1.25]. Prevalence is a property of
the data, not of the model, so it is reported but not judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame

RATES = ("tpr", "fpr", "fnr", "precision", "ppr", "prevalence")
JUDGED_RATES = ("tpr", "fpr", "fnr", "precision", "ppr")
BOUNDS = (0.8, 1.25)
MIN_GROUP_SIZE = 30


def _tp(y_true, y_pred) -> int:
    return int(np.sum((np.asarray(y_true) == 1) & (np.asarray(y_pred) == 1)))


def _fp(y_true, y_pred) -> int:
    return int(np.sum((np.asarray(y_true) == 0) & (np.asarray(y_pred) == 1)))


def _fn(y_true, y_pred) -> int:
    return int(np.sum((np.asarray(y_true) == 1) & (np.asarray(y_pred) == 0)))


def _tn(y_true, y_pred) -> int:
    return int(np.sum((np.asarray(y_true) == 0) & (np.asarray(y_pred) == 0)))


def rates_from_counts(tp, fp, fn, tn) -> dict[str, np.ndarray]:
    """The six rates from confusion counts (scalars or arrays); NaN where a denominator is 0."""
    tp, fp, fn, tn = (np.asarray(v, dtype=float) for v in (tp, fp, fn, tn))
    n = tp + fp + fn + tn

    def ratio(num, den):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)

    return {
        "tpr": ratio(tp, tp + fn),
        "fpr": ratio(fp, fp + tn),
        "fnr": ratio(fn, tp + fn),
        "precision": ratio(tp, tp + fp),
        "ppr": ratio(tp + fp, n),
        "prevalence": ratio(tp + fn, n),
    }


def binarize(labels, positive_label) -> np.ndarray:
    """1 where the label is the positive class, else 0 (labels compared as text)."""
    values = np.asarray(labels, dtype=object).astype(str)
    return (values == str(positive_label)).astype(int)


def group_rates(y_true, y_pred, groups, positive_label, attribute: str = "group") -> pd.DataFrame:
    """One row per group: size, confusion counts and the six rates."""
    yt, yp = binarize(y_true, positive_label), binarize(y_pred, positive_label)
    groups = pd.Series(np.asarray(groups, dtype=object), name=attribute).fillna("missing").astype(str)
    frame = MetricFrame(
        metrics={"tp": _tp, "fp": _fp, "fn": _fn, "tn": _tn}, y_true=yt, y_pred=yp, sensitive_features=groups
    ).by_group
    counts = frame.astype(int).reset_index().rename(columns={attribute: "group"})
    counts.insert(0, "attribute", attribute)
    counts.insert(2, "size", counts[["tp", "fp", "fn", "tn"]].sum(axis=1))
    for name, values in rates_from_counts(counts.tp, counts.fp, counts.fn, counts.tn).items():
        counts[name] = values
    return counts


def bootstrap_intervals(
    y_true, y_pred, groups, positive_label, n_boot: int = 200, confidence: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Percentile intervals of every rate, resampling rows with replacement within each group."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    yt, yp = binarize(y_true, positive_label), binarize(y_pred, positive_label)
    groups = pd.Series(np.asarray(groups, dtype=object)).fillna("missing").astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    tail = (1 - confidence) / 2 * 100
    rows = []
    for group in sorted(set(groups)):
        t, p = yt[groups == group], yp[groups == group]
        idx = rng.integers(0, len(t), size=(n_boot, len(t)))
        bt, bp = t[idx], p[idx]
        rates = rates_from_counts(
            (bt & bp).sum(1), ((1 - bt) & bp).sum(1), (bt & (1 - bp)).sum(1), ((1 - bt) & (1 - bp)).sum(1)
        )
        row = {"group": group}
        for name, values in rates.items():
            finite = values[~np.isnan(values)]
            low, high = np.percentile(finite, [tail, 100 - tail]) if len(finite) else (np.nan, np.nan)
            row[f"{name}_low"], row[f"{name}_high"] = float(low), float(high)
        rows.append(row)
    return pd.DataFrame(rows)


def _clean(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def disparities(
    rates: pd.DataFrame,
    reference_group: str | None = None,
    metrics=JUDGED_RATES,
    bounds: tuple[float, float] = BOUNDS,
    min_group_size: int = MIN_GROUP_SIZE,
) -> list[dict]:
    """Each non-reference group's rate over the reference group's, for one attribute's rate table.

    `passed` is True when the ratio lies within `bounds` (or both rates are 0); an undefined ratio
    (a rate of the group or the reference is undefined, or only the reference's is 0) fails.
    `judged` is False for groups under `min_group_size` rows: their figures are too noisy to
    decide anything and are shown, with their intervals, but do not decide the audit.
    """
    low, high = bounds
    if not 0 < low <= 1 <= high:
        raise ValueError(f"bounds must satisfy 0 < low <= 1 <= high, got {bounds}")
    if reference_group is None:
        reference_group = str(rates.sort_values(["size", "group"], ascending=[False, True]).iloc[0]["group"])
    if reference_group not in set(rates["group"]):
        raise ValueError(f"reference group {reference_group!r} not among the groups {sorted(rates['group'])}")
    ref = rates[rates["group"] == reference_group].iloc[0]
    out = []
    for _, row in rates[rates["group"] != reference_group].iterrows():
        for metric in metrics:
            value, ref_value = _clean(row[metric]), _clean(ref[metric])
            if value is None or ref_value is None:
                ratio, passed = None, False
            elif ref_value == 0:
                ratio, passed = None, value == 0
            else:
                ratio = value / ref_value
                passed = low <= ratio <= high
            item = {
                "attribute": str(row["attribute"]),
                "group": str(row["group"]),
                "reference_group": reference_group,
                "metric": metric,
                "value": value,
                "reference_value": ref_value,
                "ratio": ratio,
                "passed": bool(passed),
                "group_size": int(row["size"]),
                "judged": bool(row["size"] >= min_group_size),
            }
            if f"{metric}_low" in row.index:
                item["ci_low"], item["ci_high"] = _clean(row[f"{metric}_low"]), _clean(row[f"{metric}_high"])
            out.append(item)
    return out


@dataclass
class FairnessAudit:
    """Rates per group and disparities for every sensitive attribute of one model's predictions."""

    rates: pd.DataFrame
    disparities: list[dict] = field(default_factory=list)
    reference_groups: dict[str, str] = field(default_factory=dict)
    bounds: tuple[float, float] = BOUNDS

    @property
    def passed(self) -> bool:
        """True when every judged disparity lies within the bounds."""
        return all(d["passed"] for d in self.disparities if d["judged"])

    @property
    def failing(self) -> list[str]:
        """Readable names of judged disparities outside the bounds, e.g. `sex=Female fpr 0.31`."""
        return [
            f"{d['attribute']}={d['group']} {d['metric']} "
            + (f"{d['ratio']:.2f}" if d["ratio"] is not None else "undefined")
            for d in self.disparities
            if d["judged"] and not d["passed"]
        ]

    def disparity_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.disparities)


def audit_fairness(
    test: pd.DataFrame,
    y_true,
    y_pred,
    attributes: list[str],
    positive_label,
    reference_groups: dict[str, str] | None = None,
    bounds: tuple[float, float] = BOUNDS,
    min_group_size: int = MIN_GROUP_SIZE,
    n_boot: int = 200,
    seed: int = 0,
) -> FairnessAudit:
    """Rates, bootstrap intervals and disparities for each attribute in `attributes`."""
    missing = [a for a in attributes if a not in test.columns]
    if missing:
        raise ValueError(f"sensitive attributes {missing} are not columns of the audited rows {list(test.columns)}")
    reference_groups = dict(reference_groups or {})
    tables, found, chosen = [], [], {}
    for attribute in attributes:
        rates = group_rates(y_true, y_pred, test[attribute].to_numpy(), positive_label, attribute)
        intervals = bootstrap_intervals(
            y_true, y_pred, test[attribute].to_numpy(), positive_label, n_boot=n_boot, seed=seed
        )
        rates = rates.merge(intervals, on="group", how="left")
        items = disparities(rates, reference_groups.get(attribute), bounds=bounds, min_group_size=min_group_size)
        chosen[attribute] = items[0]["reference_group"] if items else str(rates["group"].iloc[0])
        tables.append(rates)
        found += items
    rates = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return FairnessAudit(rates=rates, disparities=found, reference_groups=chosen, bounds=bounds)
