"""Drift alerts a user would want: false alarms and detection, labline against Evidently.

    python benchmarks/drift_alerts.py [--datasets iris,census,airbnb] [--same 40] [--shifted 10] [--out FILE]

For each data set a reference (the rows a model is trained on: a random half, or 5,000 synthetic
Iris rows) and windows of 200 and 2,000 rows drawn from the other half (new synthetic rows for
Iris): `--same` same-distribution windows, and `--shifted` windows per shift kind:

- numeric +0.5 sd, +1 sd: one numeric feature moved by that many reference standard deviations
  (window i shifts the i-th numeric feature, cycling);
- category x2: one category's share doubled (the largest share of at most 40% and at least 5%
  in each categorical feature, cycling; rows resampled, so correlated columns move with it);
- label mix: rows resampled so the target's minority class (classification) or the listings
  above the reference's 75th price percentile (regression) make up twice their share.

labline: `assess` with a random forest trained on three quarters of the reference (its outputs'
reference: the last quarter, which it did not see); a window alarms when any drift rule fires
(feature_effect, important_feature, share_of_features, prediction_drift).
Evidently 0.7's DataDriftPreset, in its own virtual environment (benchmarks/.venvs/evidently,
created on first use; benchmarks/evidently_runner.py), on the very same windows (written to
parquet; a text column as its length in words, which is what labline tests too): a window alarms
when the preset reports dataset drift (its default: half of the columns drifted); the table also
gives how often it flagged any column. Results in benchmarks/results/drift_alerts.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labline.data.datasets import load_dataset  # noqa: E402
from labline.data.perturb import perturb  # noqa: E402
from labline.data.spec import DatasetSpec  # noqa: E402
from labline.monitor.alerts import AlertRule  # noqa: E402
from labline.monitor.drift import word_counts  # noqa: E402
from labline.monitor.health import assess  # noqa: E402
from labline.monitor.importance import permutation_importance  # noqa: E402

VENV = Path(__file__).resolve().parent / ".venvs" / "evidently"
PINS = ["evidently==0.7.23", "pandas<3", "pyarrow"]  # Evidently 0.7 imports pandas internals gone in 3.0
OUT = ROOT / "benchmarks" / "results" / "drift_alerts.json"
SIZES = (200, 2000)
DRIFT_RULES = {
    AlertRule.FEATURE_EFFECT,
    AlertRule.IMPORTANT_FEATURE,
    AlertRule.SHARE_OF_FEATURES,
    AlertRule.PREDICTION_DRIFT,
}
KINDS = ("same", "numeric +0.5sd", "numeric +1sd", "category x2", "label mix")


def ensure_evidently(venv: Path = VENV) -> Path:
    """The Evidently environment's Python, created (once per set of pins) when missing."""
    python, stamp = venv / "bin" / "python", venv / ".installed"
    wanted = hashlib.sha256(" ".join(PINS).encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"creating {venv} ({', '.join(PINS)}; once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True)
    stamp.write_text(wanted)
    return python


@dataclass
class Bench:
    name: str
    spec: DatasetSpec
    reference: pd.DataFrame
    draw: object  # (rows, seed) -> a same-distribution window

    @property
    def numeric(self) -> list[str]:
        return [c for c in self.spec.features if c not in self.spec.categorical and c not in self.spec.text]


def iris_bench() -> Bench:
    from labline.data.iris_synth import SPEC
    from labline.data.synth import synth_frame

    def draw(rows: int, seed: int) -> pd.DataFrame:
        return synth_frame(rows, seed=1000 + seed)

    return Bench("iris", SPEC("5000"), synth_frame(5000, seed=0), draw)


def table_bench(name: str) -> Bench:
    frame, spec = load_dataset(name)
    order = np.random.default_rng(0).permutation(len(frame))
    half = len(frame) // 2
    reference = frame.iloc[order[:half]].reset_index(drop=True)
    pool = frame.iloc[order[half:]].reset_index(drop=True)
    return Bench(name, spec, reference, lambda rows, seed: pool.sample(rows, random_state=seed).reset_index(drop=True))


def doubled_categories(bench: Bench) -> list[tuple[str, str, float]]:
    """(column, category, reference share) per categorical feature with a category to double."""
    chosen = []
    for column in bench.spec.categorical:
        shares = bench.reference[column].astype(str).value_counts(normalize=True)
        fit = shares[(shares <= 0.4) & (shares >= 0.05)]
        if len(fit):
            chosen.append((column, str(fit.index[0]), float(fit.iloc[0])))
    return chosen


def label_mix(bench: Bench, window: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The window resampled so the minority class (or the top price quartile) is twice as common."""
    target, reference = bench.spec.target, bench.reference[bench.spec.target]
    if bench.spec.task == "classification":
        shares = reference.astype(str).value_counts(normalize=True)
        return perturb(window, [f"{target}=mix:{shares.index[-1]}:{min(0.95, 2 * shares.iloc[-1])}"], seed=seed)
    cut = float(reference.quantile(0.75))
    marked = window.assign(_band=np.where(window[target] > cut, "high", "low"))
    return perturb(marked, ["_band=mix:high:0.5"], seed=seed).drop(columns="_band")


def window(bench: Bench, kind: str, rows: int, i: int) -> pd.DataFrame | None:
    """Window i of a kind (None when the data set has nothing to shift for that kind)."""
    seed = 10_000 * KINDS.index(kind) + 100 * rows + i
    base = bench.draw(rows, seed)
    if kind == "same":
        return base
    if kind.startswith("numeric"):
        column = bench.numeric[i % len(bench.numeric)]
        size = 0.5 if "0.5" in kind else 1.0
        std = float(pd.to_numeric(bench.reference[column], errors="coerce").std())
        return perturb(base, [f"{column}=+{size * std:.10g}"], seed=seed)
    if kind == "category x2":
        choices = doubled_categories(bench)
        if not choices:
            return None
        column, category, share = choices[i % len(choices)]
        return perturb(base, [f"{column}=mix:{category}:{2 * share:.6f}"], seed=seed)
    return label_mix(bench, base, seed)


def as_columns(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The features as Evidently sees them: text columns as their length in words."""
    out = frame[spec.features].copy()
    for column in spec.text:
        out[column] = word_counts(out[column])
    return out


def run_labline(bench: Bench, windows: dict[str, pd.DataFrame]) -> dict[str, dict]:
    from labline.models.sklearn_models import build_training_pipeline

    spec, reference = bench.spec, bench.reference
    train, heldout = reference.iloc[: len(reference) * 3 // 4], reference.iloc[len(reference) * 3 // 4 :]
    model = build_training_pipeline(spec, "random_forest").fit(train[spec.features], train[spec.target])
    importance = permutation_importance(model, reference, spec)
    # As labline monitor does: the outputs' reference is the model on rows it did not train on (a
    # forest's answers on its own training rows are more spread than on new rows).
    reference_predictions = np.asarray(model.predict(heldout[spec.features]))
    results = {}
    for name, rows in windows.items():
        result = assess(
            reference, rows, spec, model=model, importance=importance, reference_predictions=reference_predictions
        )
        rules = sorted({str(r) for r in result.rules if r in DRIFT_RULES})
        results[name] = {"alarm": bool(rules), "rules": rules, "drifted": [f.feature for f in result.drift.drifted]}
    return {"importance": importance, "windows": results}


def run_evidently(python: Path, bench: Bench, windows: dict[str, pd.DataFrame], folder: Path) -> dict[str, dict]:
    spec = bench.spec
    (folder / "windows").mkdir(parents=True)
    numerical = [c for c in spec.features if c not in spec.categorical]
    (folder / "columns.json").write_text(json.dumps({"numerical": numerical, "categorical": spec.categorical}))
    as_columns(bench.reference, spec).to_parquet(folder / "reference.parquet")
    for name, rows in windows.items():
        as_columns(rows, spec).to_parquet(folder / "windows" / f"{name}.parquet")
    script = Path(__file__).resolve().parent / "evidently_runner.py"
    done = subprocess.run([str(python), str(script), str(folder)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"evidently_runner failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads((folder / "evidently.json").read_text())


def summarize(name: str, labline: dict, evidently: dict) -> list[dict]:
    rows = []
    for size in SIZES:
        for kind in KINDS:
            keys = [k for k in labline["windows"] if k.startswith(f"{size}|{kind}|")]
            if not keys:
                continue
            rule_counts: dict[str, int] = {}
            for k in keys:
                for rule in labline["windows"][k]["rules"]:
                    rule_counts[rule] = rule_counts.get(rule, 0) + 1
            rows.append(
                {
                    "dataset": name,
                    "rows": size,
                    "kind": kind,
                    "windows": len(keys),
                    "labline": sum(labline["windows"][k]["alarm"] for k in keys) / len(keys),
                    "evidently": sum(evidently[_file(k)]["dataset_drift"] for k in keys) / len(keys),
                    "evidently_any_column": sum(bool(evidently[_file(k)]["drifted"]) for k in keys) / len(keys),
                    "labline_rules": rule_counts,
                }
            )
    return rows


def _file(key: str) -> str:
    return key.replace("|", "_").replace(" ", "").replace("+", "p").replace(".", "")


def bench_one(bench: Bench, python: Path, same: int, shifted: int, folder: Path) -> dict:
    windows = {}
    for size in SIZES:
        for kind in KINDS:
            for i in range(same if kind == "same" else shifted):
                rows = window(bench, kind, size, i)
                if rows is not None:
                    windows[f"{size}|{kind}|{i}"] = rows
    print(f"{bench.name}: {len(windows)} windows", flush=True)
    labline = run_labline(bench, windows)
    evidently = run_evidently(python, bench, {_file(k): v for k, v in windows.items()}, folder / bench.name)
    return {"summary": summarize(bench.name, labline, evidently), "importance": labline["importance"]}


def print_table(rows: list[dict]) -> None:
    print(f"{'data set':8} {'rows':>5} {'windows':>7} {'kind':16} {'labline':>8} {'Evidently':>9} {'Ev. any col':>11}")
    for r in rows:
        print(
            f"{r['dataset']:8} {r['rows']:>5} {r['windows']:>7} {r['kind']:16} {r['labline']:>8.0%} "
            f"{r['evidently']:>9.0%} {r['evidently_any_column']:>11.0%}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="iris,census,airbnb")
    parser.add_argument("--same", type=int, default=40, help="same-distribution windows per size (default 40)")
    parser.add_argument("--shifted", type=int, default=10, help="windows per shift kind and size (default 10)")
    parser.add_argument("--out", type=Path, default=OUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    python = ensure_evidently()
    makers = {"iris": iris_bench, "census": lambda: table_bench("census"), "airbnb": lambda: table_bench("airbnb")}
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in makers]
    if unknown:
        print(f"unknown data sets {unknown}; choose from {sorted(makers)}", file=sys.stderr)
        return 2
    rows, importance = [], {}
    with tempfile.TemporaryDirectory(prefix="drift-alerts-") as tmp:
        for name in names:
            done = bench_one(makers[name](), python, args.same, args.shifted, Path(tmp))
            rows += done["summary"]
            importance[name] = done["importance"]
    print_table(rows)
    load = os.getloadavg()
    result = {"rows": rows, "importance": importance, "load_average": load, "same": args.same, "shifted": args.shifted}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"load average {load[0]:.2f}; written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
