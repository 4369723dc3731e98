"""Training rows read from a Parquet file one row group at a time.

A file larger than memory is trained on by visiting its row groups in a fresh random order each
epoch; only one group (and the next, read ahead in a thread) is in memory. Each row's part (train,
validation, test) depends only on the seed and the row's place in the file, so the in-memory path
and the streaming path of the same file see exactly the same split.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from labline.data.snapshot import SPLIT
from labline.data.spec import DatasetSpec

PARTS = ("train", "val", "test")


def row_parts(frame: pd.DataFrame, group: int, seed: int, test_size: float, val_size: float) -> np.ndarray:
    """The part of every row of one row group: explore's `split` column when present, else drawn.

    Validation rows are drawn from the training rows, `val_size` of them.
    """
    draws = np.random.default_rng([seed, group]).random((2, len(frame)))
    if SPLIT in frame.columns:
        test = frame[SPLIT].astype(str).to_numpy() == "test"
    else:
        test = draws[0] < test_size
    parts = np.where(test, "test", np.where(draws[1] < val_size, "val", "train"))
    return parts


def read_ahead(items: Iterator, depth: int = 1) -> Iterator:
    """Yield `items`, producing the next one in a thread while the caller works on this one.

    Reading and decoding Parquet releases the GIL, so the next row group loads during training.
    """
    box: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            for item in items:
                box.put(item)
            box.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            box.put(exc)

    threading.Thread(target=produce, daemon=True).start()
    while (item := box.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


class ParquetRows:
    """The rows of one part of a Parquet file, as (features, targets) tensors per row group.

    `encode` turns a frame of rows into (float32 features, targets) NumPy arrays: the fitted
    preprocessing and the label or target encoding, the same as the in-memory path uses.
    """

    def __init__(
        self,
        path: str | Path,
        spec: DatasetSpec,
        part: str,
        seed: int,
        test_size: float,
        val_size: float,
        encode: Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray]] | None = None,
        device: torch.device | str = "cpu",
    ):
        import pyarrow.parquet as pq

        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"Parquet file {str(self.path)!r} does not exist")
        self.file = pq.ParquetFile(self.path)
        names = set(self.file.schema_arrow.names)
        missing = [c for c in spec.columns if c not in names]
        if missing:
            raise ValueError(f"{self.path} lacks columns {missing}; the data set {spec.name!r} needs {spec.columns}")
        self.columns = [*spec.columns, *([SPLIT] if SPLIT in names else [])]
        self.spec, self.part, self.seed = spec, part, seed
        self.test_size, self.val_size = test_size, val_size
        self.encode = encode
        self.device = torch.device(device)

    @property
    def groups(self) -> int:
        return self.file.metadata.num_row_groups

    @property
    def file_rows(self) -> int:
        return self.file.metadata.num_rows

    def frame(self, group: int) -> pd.DataFrame:
        """The rows of this part in one row group, raw (before preprocessing)."""
        frame = self.file.read_row_group(group, columns=self.columns).to_pandas()
        keep = row_parts(frame, group, self.seed, self.test_size, self.val_size) == self.part
        return frame.loc[keep].drop(columns=[SPLIT], errors="ignore").reset_index(drop=True)

    def frames(self, limit_rows: int | None = None) -> Iterator[pd.DataFrame]:
        """This part's rows group by group in file order, stopping after `limit_rows` rows."""
        seen = 0
        for group in range(self.groups):
            frame = self.frame(group)
            if limit_rows is not None:
                frame = frame.iloc[: limit_rows - seen]
            seen += len(frame)
            yield frame
            if limit_rows is not None and seen >= limit_rows:
                return

    def _tensors(self, frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        if self.encode is None:
            raise RuntimeError("ParquetRows needs `encode` (the fitted preprocessing) to produce tensors")
        features, targets = self.encode(frame)
        x, y = torch.from_numpy(features), torch.from_numpy(targets)
        if self.device.type == "cuda":  # pinned host memory lets the copy overlap with compute
            x, y = x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
        return x, y

    def epoch_chunks(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every row group once, in an order drawn from (seed, epoch), read one group ahead."""
        order = np.random.default_rng([self.seed, epoch, 1]).permutation(self.groups)
        chunks = (self._tensors(frame) for frame in (self.frame(int(g)) for g in order) if len(frame))
        return read_ahead(chunks)

    def tensors(self, limit_rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """This part's rows (up to `limit_rows`) as one pair of tensors: validation and test sets."""
        frames = [f for f in self.frames(limit_rows) if len(f)]
        if not frames:
            raise ValueError(f"{self.path} has no {self.part} rows")
        return self._tensors(pd.concat(frames, ignore_index=True))
