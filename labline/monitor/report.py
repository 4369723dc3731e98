"""The monitoring report: a Markdown page with the verdict, the per-feature table and plots.

Written beside `result.json` (the same facts, for machines) in the report folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from labline.monitor.drift import word_counts
from labline.monitor.health import MonitorResult


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def plot_distributions(
    reference: pd.DataFrame, current: pd.DataFrame, result: MonitorResult, out_dir: str | Path, max_features: int = 6
) -> list[Path]:
    """Reference vs current histograms (bars for categories) of the most drifted features, and of
    the predictions; returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ranked = sorted(
        (f for f in result.drift.features if f.effect is not None), key=lambda f: (not f.drifted, -(f.effect or 0.0))
    )[:max_features]
    paths = []
    if ranked:
        fig, axes = plt.subplots(1, len(ranked), figsize=(3.6 * len(ranked), 3.0), squeeze=False)
        for ax, feature in zip(axes[0], ranked):
            ref, cur = reference[feature.feature], current[feature.feature]
            if feature.kind == "categorical":
                shares = pd.DataFrame(
                    {
                        "reference": ref.astype(str).value_counts(normalize=True),
                        "current": cur.astype(str).value_counts(normalize=True),
                    }
                ).fillna(0)
                shares.plot.bar(ax=ax, rot=45, fontsize=7)
            else:
                if feature.kind == "text":
                    ref, cur = word_counts(ref), word_counts(cur)
                ref, cur = pd.to_numeric(ref, errors="coerce").dropna(), pd.to_numeric(cur, errors="coerce").dropna()
                low, high = np.nanpercentile(np.concatenate([ref, cur]), [1, 99]) if len(ref) + len(cur) else (0, 1)
                bins = np.linspace(low, high if high > low else low + 1, 30)
                ax.hist(ref.clip(low, high), bins=bins, density=True, alpha=0.5, label="reference")
                ax.hist(cur.clip(low, high), bins=bins, density=True, alpha=0.5, label="current")
                ax.legend(fontsize=7)
            ax.set_title(f"{feature.feature}: {feature.status}", fontsize=9)
        fig.tight_layout()
        paths.append(out / "features.png")
        fig.savefig(paths[-1], dpi=80)
        plt.close(fig)
    if (
        result.predictions is not None
        and result.reference_predictions is not None
        and np.issubdtype(np.asarray(result.predictions).dtype, np.number)
    ):
        fig, ax = plt.subplots(figsize=(5, 3))
        both = np.concatenate([result.reference_predictions, result.predictions])
        bins = np.linspace(np.nanmin(both), np.nanmax(both) + 1e-9, 30)
        ax.hist(result.reference_predictions, bins=bins, density=True, alpha=0.5, label="reference")
        ax.hist(result.predictions, bins=bins, density=True, alpha=0.5, label="current")
        ax.set_title(f"predictions: {result.prediction.status if result.prediction else 'not tested'}", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out / "predictions.png")
        fig.savefig(paths[-1], dpi=80)
        plt.close(fig)
    return paths


def rules_text(result: MonitorResult) -> str:
    """The decision rules with this run's thresholds, in one sentence each."""
    drift, config = result.drift.config, result.config
    return (
        f"Each feature: Kolmogorov-Smirnov (numeric) or chi-square (categorical, categories expecting fewer than "
        f"{drift.min_expected:g} rows pooled); p-values Holm-adjusted over the window's tests; drift when the "
        f"adjusted p < {drift.alpha} and the effect reaches its floor ({drift.numeric_floor} reference std, "
        f"total variation {drift.categorical_floor}). Alerts: **feature_effect** a drifted feature's effect >= "
        f"{config.numeric_effect} std (total variation >= {config.categorical_effect}) or its missing rate moved "
        f"by more than {drift.missing_rate_tolerance}; **important_feature** a drifted feature with >= "
        f"{config.important_share:.0%} of the model's importance; **share_of_features** >= {drift.drift_share:.0%} "
        f"of the features drifted; **prediction_drift** the model's outputs drifted."
    )


def feature_table(result: MonitorResult) -> list[str]:
    """One row per feature: its test, raw and adjusted p, effect, and the model's importance."""
    importance = result.importance or {}
    header = ["feature", "kind", "status", "test", "statistic", "p-value", "adjusted p", "effect", "floor"]
    header += ["importance", "rows", "detail"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for f in result.drift.features:
        lines.append(
            f"| {f.feature} | {f.kind} | {f.status} | {f.method} | {_fmt(f.statistic)} | {_fmt(f.p_value)} | "
            f"{_fmt(f.adjusted_p)} | {_fmt(f.effect)} | {_fmt(f.threshold)} | {_fmt(importance.get(f.feature))} | "
            f"{f.current_rows} | {f.detail} |"
        )
    return lines


def render_markdown(result: MonitorResult, plots: list[Path] | None = None) -> str:
    """The report as Markdown (plots linked by file name, relative to the report)."""
    config = result.drift.config
    lines = [
        f"# Monitoring report: {result.status.upper()}",
        "",
        f"- model: {result.model or 'unknown'}",
        f"- current data: {result.source} ({result.current_rows} rows)",
        f"- reference: the model's training rows ({result.reference_rows} rows)",
        f"- dataset drift: {'yes' if result.drift.dataset_drift else 'no'} "
        f"({len(result.drift.drifted)} of {len(result.drift.tested)} tested features drifted, "
        f"{result.drift.drifted_share:.0%}; threshold {config.drift_share:.0%})",
        "",
    ]
    if result.alerts:
        lines += ["## Alerts", ""] + [f"- **{a.rule or a.kind}** ({a.kind}): {a.message}" for a in result.alerts] + [""]
    else:
        lines += [
            "No alerts."
            if result.status != "not enough data"
            else f"Not enough data: fewer than {config.min_rows} rows in the window; nothing was judged.",
            "",
        ]
    lines += ["## Features", "", rules_text(result), ""] + feature_table(result)
    lines += ["", "## Predictions", ""]
    if result.prediction is None:
        lines.append("Not tested (no model or no predictions for the window).")
    else:
        p = result.prediction
        lines.append(
            f"{p.status}: {p.method} statistic {_fmt(p.statistic)}, p {_fmt(p.p_value)}, adjusted p "
            f"{_fmt(p.adjusted_p)}, effect {_fmt(p.effect)} (floor {_fmt(p.threshold)}), {p.current_rows} predictions. "
            f"{p.detail}"
        )
    lines += ["", "## Performance", ""]
    lines.append(result.performance["detail"] if result.performance else "No labels in the window.")
    if result.quality:
        lines += ["", "## Data quality", ""] + [f"- {q['detail']}" for q in result.quality]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


def write_report(result: MonitorResult, reference: pd.DataFrame, current: pd.DataFrame, out_dir: str | Path) -> Path:
    """Write report.md, result.json and the plots into `out_dir`; returns report.md's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = plot_distributions(reference, current, result, out)
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    path = out / "report.md"
    path.write_text(render_markdown(result, plots))
    return path
