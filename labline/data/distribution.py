"""Distribution checks: does a new batch look like a reference batch known to be good?

- Categorical columns: the KL divergence D(batch || reference) of the two value distributions
  (in bits, `scipy.stats.entropy(batch, reference, base=2)`), failing above a threshold (0.2 by
  default, the course's check). Missing values count as their own category, and every count
  gets a small pseudo-count so that a category absent from one side gives a large but finite
  figure.
- Numeric columns: a two-sample Kolmogorov-Smirnov test, failing when its p-value is below
  alpha divided by the number of numeric columns tested (Bonferroni), so that testing many
  columns does not by itself raise false alarms.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from labline.data.spec import DatasetSpec

KL_THRESHOLD = 0.2
ALPHA = 0.05
PSEUDO_COUNT = 0.5
MISSING = "<missing>"


def category_counts(batch: pd.Series, reference: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Counts of each value (missing as its own value) on both sides, aligned on their union."""
    a = batch.astype(object).where(batch.notna(), MISSING).astype(str).value_counts()
    b = reference.astype(object).where(reference.notna(), MISSING).astype(str).value_counts()
    values = sorted(set(a.index) | set(b.index))
    return (a.reindex(values, fill_value=0).to_numpy(float), b.reindex(values, fill_value=0).to_numpy(float), values)


def kl_divergence(batch: pd.Series, reference: pd.Series, pseudo_count: float = PSEUDO_COUNT) -> float:
    """D(batch || reference) in bits between two columns' value distributions."""
    p, q, _ = category_counts(batch, reference)
    return float(stats.entropy(p + pseudo_count, q + pseudo_count, base=2))


def ks_test(batch: pd.Series, reference: pd.Series) -> tuple[float, float]:
    """(KS statistic, p-value) of the two columns' non-missing values."""
    a = pd.to_numeric(batch, errors="coerce").dropna().to_numpy(float)
    b = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(float)
    if len(a) == 0 or len(b) == 0:
        return float("nan"), float("nan")
    result = stats.ks_2samp(a, b)
    return float(result.statistic), float(result.pvalue)


def check_distribution(
    frame: pd.DataFrame,
    reference: pd.DataFrame,
    spec: DatasetSpec,
    report,
    kl_threshold: float = KL_THRESHOLD,
    alpha: float = ALPHA,
) -> None:
    """Add one distribution check per categorical and numeric column to `report`.

    The target is compared too when it is categorical: a label shift is worth stopping for.
    """
    if kl_threshold <= 0:
        raise ValueError(f"kl_threshold must be positive, got {kl_threshold}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    categorical = list(spec.categorical)
    if spec.task == "classification":
        categorical.append(spec.target)
    for col in categorical:
        if col not in frame.columns or col not in reference.columns:
            continue
        kl = kl_divergence(frame[col], reference[col])
        p, q, values = category_counts(frame[col], reference[col])
        shifted = np.argmax(np.abs(p / max(p.sum(), 1) - q / max(q.sum(), 1)))
        detail = (
            f"threshold {kl_threshold}; largest share change: {values[shifted]} "
            f"{q[shifted] / max(q.sum(), 1):.3f} -> {p[shifted] / max(p.sum(), 1):.3f}"
        )
        report.add(f"KL divergence {col}", kl <= kl_threshold, f"{kl:.4f}", detail, group="distribution")
    numeric = [
        c
        for c in spec.numeric
        if c in frame.columns
        and c in reference.columns
        and pd.api.types.is_numeric_dtype(frame[c])
        and pd.api.types.is_numeric_dtype(reference[c])
    ]
    corrected = alpha / max(len(numeric), 1)
    for col in numeric:
        statistic, pvalue = ks_test(frame[col], reference[col])
        ok = not np.isnan(pvalue) and pvalue >= corrected
        detail = (
            f"KS statistic {statistic:.4f}; fails below alpha {alpha}/{len(numeric)} = {corrected:.2g}; "
            f"median {frame[col].median():.4g} vs reference {reference[col].median():.4g}"
        )
        report.add(f"KS test {col}", ok, f"p={pvalue:.3g}", detail, group="distribution")
