"""Train the PyTorch model on a Parquet file of any size, in one process or under torchrun.

    python -m labline.models.train_parquet --data big.parquet --target species --out runs/big
    torchrun --standalone --nproc_per_node 2 -m labline.models.train_parquet --data big.parquet ...

Files up to `--memory-rows` rows are loaded once; larger ones are streamed row group by row group
(`--stream yes` forces it). The preprocessing is fitted on the first 200,000 training rows
(`train_parquet(fit_sample_rows=...)` from Python). The output is the same model artifact the
train_torch notebook saves, plus metrics.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from labline.data.frame import model_frame
from labline.data.spec import DatasetSpec, infer_spec
from labline.models.artifact import save_torch_model
from labline.models.metrics import classification_metrics, regression_metrics
from labline.models.parquet_rows import ParquetRows
from labline.models.preprocess import build_preprocessor
from labline.models.torch_train import (
    FitConfig,
    NetworkTargets,
    TensorData,
    build_model,
    fit,
    init_distributed,
    peak_memory_mb,
    predict_outputs,
    scaled_lr,
    to_tensors,
)


def _spec(data_path: Path, target: str | None, spec_path: str | None) -> DatasetSpec:
    if spec_path:
        return DatasetSpec.from_file(spec_path)
    import pyarrow.parquet as pq

    if not target:
        raise ValueError(f"{data_path} needs --target COLUMN (or --spec FILE) to name the label column")
    sample = pq.ParquetFile(data_path).read_row_group(0).to_pandas().drop(columns=["split"], errors="ignore")
    return infer_spec(sample, target, name=data_path.name.split(".")[0])


def _fit_summary(result, task: str, dev, where, streaming: bool, batch_size: int, rate: float, target) -> dict:
    """What training measured, before the test rows are scored."""
    return {
        "task": task,
        "device": str(dev),
        "world_size": where.world_size,
        "streamed": streaming,
        "epochs": len(result.history["epoch"]),
        "batch_size": batch_size,
        "lr": rate,
        "steps": result.steps,
        "fit_seconds": round(result.seconds, 4),
        "samples_per_second": round(result.samples_per_second, 1),
        "time_to_target": result.target_reached,
        "target_accuracy": target,
        "loss_curve": result.history,
        "peak_memory_mb": peak_memory_mb(dev),
    }


def _test_metrics(test_rows: ParquetRows, spec: DatasetSpec, encode, net, targets: NetworkTargets, dev) -> dict:
    """The held-out metrics, scored row group by row group so the test split never sits in memory whole."""
    y_true, y_pred = [], []
    for frame in test_rows.frames():
        if len(frame):
            x, _ = to_tensors(*encode(frame), dev)
            y_pred.append(targets.decode(predict_outputs(net, x)))
            classification = spec.task == "classification"
            column = frame[spec.target]
            y_true.append(column.astype(str).to_numpy() if classification else column.to_numpy(float))
    y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
    if spec.task == "classification":
        metrics = classification_metrics(y_true, y_pred, targets.labels)
        metrics["confusion_matrix"] = metrics["confusion_matrix"].to_dict()
    else:
        metrics = regression_metrics(y_true, y_pred)
    return {**metrics, "test_rows": int(len(y_true))}


def _leave_process_group(where) -> None:
    """Under torchrun, wait for rank 0's files, then leave the process group."""
    if where.world_size > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def train_parquet(
    data_path: str | Path,
    out: str | Path,
    target: str | None = None,
    spec_path: str | None = None,
    hidden_sizes: list[int] = (16,),
    epochs: int = 3,
    batch_size: int = 4096,
    lr: float = 0.01,
    base_batch_size: int = 16,
    device: str = "auto",
    seed: int = 42,
    test_size: float = 0.2,
    val_size: float = 0.1,
    stream: str = "auto",
    memory_rows: int = 5_000_000,
    fit_sample_rows: int = 200_000,
    max_val_rows: int = 100_000,
    target_accuracy: float | None = 0.95,
) -> dict:
    """Train, test and save; returns the summary written to `out/metrics.json` (rank 0 writes)."""
    if stream not in ("auto", "yes", "no"):
        raise ValueError(f"stream must be auto, yes or no, got {stream!r}")
    data_path, out = Path(data_path), Path(out)
    where, dev = init_distributed(device)
    spec = _spec(data_path, target, spec_path)
    parts = dict(seed=seed, test_size=test_size, val_size=val_size, device=dev)
    train_rows = ParquetRows(data_path, spec, "train", **parts)
    sample = pd.concat(list(train_rows.frames(fit_sample_rows)), ignore_index=True)
    preprocess = build_preprocessor(spec).fit(model_frame(spec, sample))
    targets = NetworkTargets.fit(spec.task, sample[spec.target], spec.labels or None)

    def encode(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        features = np.asarray(preprocess.transform(model_frame(spec, frame)), dtype=np.float32)
        return features, targets.encode(frame[spec.target])

    train_rows.encode = encode
    val_x, val_y = ParquetRows(data_path, spec, "val", encode=encode, **parts).tensors(max_val_rows)
    streaming = stream == "yes" or (stream == "auto" and train_rows.file_rows > memory_rows)
    data = train_rows if streaming else TensorData(*train_rows.tensors())

    net, model = build_model(val_x.shape[1], list(hidden_sizes), targets.n_outputs, dev, where, seed)
    rate = scaled_lr(lr, batch_size, base_batch_size)
    config = FitConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=rate,
        seed=seed,
        target_accuracy=target_accuracy,
        eval_every_steps=50 if spec.task == "classification" else 0,
    )
    result = fit(model, data, (val_x, val_y), spec.task, config, where)

    summary = _fit_summary(result, spec.task, dev, where, streaming, batch_size, rate, target_accuracy)
    if where.is_main:
        test_rows = ParquetRows(data_path, spec, "test", encode=encode, **parts)
        summary.update(_test_metrics(test_rows, spec, encode, net, targets, dev))
        config_json = {
            "n_features": int(val_x.shape[1]),
            "hidden_sizes": list(hidden_sizes),
            "n_outputs": targets.n_outputs,
        }
        metadata = {
            "epochs": epochs,
            "lr": rate,
            "batch_size": batch_size,
            "seed": seed,
            "data_path": str(data_path),
            "world_size": where.world_size,
            **targets.metadata(),
        }
        summary["model_dir"] = str((out / "model").resolve())
        summary["artifact_sha256"] = save_torch_model(
            out / "model", net, preprocess, config_json, spec, targets.labels, metadata
        )
        (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
    _leave_process_group(where)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m labline.models.train_parquet", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--data", required=True, type=Path, help="Parquet file (explore's snapshot, or labline data synth output)"
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for model/ and metrics.json")
    parser.add_argument("--target", help="label column (or give --spec)")
    parser.add_argument("--spec", help="data set spec JSON (explore writes spec.json)")
    parser.add_argument("--hidden-sizes", type=int, nargs="+", default=[16])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4096, help="rows per step over all processes")
    parser.add_argument(
        "--lr", type=float, default=0.01, help="Adam rate at --base-batch-size; scaled by sqrt(batch ratio)"
    )
    parser.add_argument("--base-batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--test-size", type=float, default=0.2, help="test share when the file has no split column")
    parser.add_argument("--val-size", type=float, default=0.1, help="share of the training rows kept for validation")
    parser.add_argument("--stream", choices=["auto", "yes", "no"], default="auto")
    parser.add_argument(
        "--memory-rows", type=int, default=5_000_000, help="auto streams files with more rows than this"
    )
    parser.add_argument("--target-accuracy", type=float, default=0.95)
    args = parser.parse_args(argv)
    try:
        summary = train_parquet(
            args.data,
            args.out,
            args.target,
            args.spec,
            args.hidden_sizes,
            args.epochs,
            args.batch_size,
            args.lr,
            args.base_batch_size,
            args.device,
            args.seed,
            args.test_size,
            args.val_size,
            args.stream,
            args.memory_rows,
            target_accuracy=args.target_accuracy,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"train_parquet: {exc}", file=sys.stderr)
        return 2
    if "model_dir" in summary:
        shown = {
            k: summary[k]
            for k in (
                "task",
                "device",
                "world_size",
                "streamed",
                "epochs",
                "fit_seconds",
                "samples_per_second",
                "time_to_target",
                "test_accuracy",
                "test_r2",
            )
            if k in summary
        }
        print(json.dumps(shown, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
