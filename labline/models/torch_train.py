"""The PyTorch training loop that scales: from 150 flowers to data larger than memory, one
process or many.

What makes it fast is what the tutorial loop (`DataLoader(TensorDataset(...), batch_size=32)`)
does not do: batches are slices of tensors already on the device (no per-sample Python), batches
are large with the learning rate scaled to match, CUDA gets pinned memory, non-blocking copies
and bfloat16 autocast, and on CPU the thread count follows the cores this process may use.
Under `torchrun` the same loop runs as DistributedDataParallel: every process walks the same
shuffled order and takes its share of each global batch, so gradients are averaged over exactly
the rows one process would have used.

Example:
    >>> data = TensorData(torch.randn(256, 4), torch.randint(0, 3, (256,)))
    >>> model = Net(4, [8], 3)
    >>> result = fit(model, data, (data.x, data.y), "classification", FitConfig(epochs=2, batch_size=64))
    >>> len(result.history["epoch"])
    2
"""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from labline.models.schedule import EarlyStopping
from labline.models.torch_net import Net, select_device

EVAL_BATCH = 1 << 16


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(requested_device: str = "auto") -> tuple[Distributed, torch.device]:
    """Join the process group torchrun describes in the environment, or run alone.

    Backend: NCCL with one GPU per process when CUDA is used, gloo on CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed(), select_device(requested_device)
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    device = select_device(requested_device, processes_per_machine=local_world)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank=rank, world_size=world_size), device


def scaled_lr(lr: float, batch_size: int, base_batch_size: int) -> float:
    """`lr` was tuned at `base_batch_size`; a larger batch takes fewer, less noisy steps, so
    Adam's rate grows with the square root of the batch ratio."""
    if batch_size < 1 or base_batch_size < 1:
        raise ValueError(
            f"batch sizes must be positive, got batch_size={batch_size}, base_batch_size={base_batch_size}"
        )
    return lr * math.sqrt(batch_size / base_batch_size)


class TensorData:
    """Training rows held as two tensors: one chunk, the whole set."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        if len(x) != len(y):
            raise ValueError(f"features have {len(x)} rows but targets have {len(y)}")
        if len(x) == 0:
            raise ValueError("no training rows")
        self.x, self.y = x, y

    def epoch_chunks(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        yield self.x, self.y


def to_tensors(features: np.ndarray, targets: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Host arrays to device tensors: pinned memory and non-blocking copies on CUDA."""
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    y = torch.from_numpy(np.ascontiguousarray(targets))
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x, y


@dataclass
class NetworkTargets:
    """Targets as the network sees them: class indices, or a standardized value for regression."""

    task: str
    labels: list[str] = field(default_factory=list)
    mean: float = 0.0
    scale: float = 1.0

    @classmethod
    def fit(cls, task: str, values: pd.Series, labels: list[str] | None = None) -> NetworkTargets:
        if task == "classification":
            return cls(task, labels=list(labels) if labels else sorted(values.astype(str).unique()))
        values = pd.to_numeric(values, errors="raise").astype(float)
        scale = float(values.std(ddof=0))
        return cls(task, mean=float(values.mean()), scale=scale if scale > 0 else 1.0)

    @property
    def n_outputs(self) -> int:
        return len(self.labels) if self.task == "classification" else 1

    def encode(self, values: pd.Series) -> np.ndarray:
        if self.task == "classification":
            codes = pd.Index(self.labels).get_indexer(values.astype(str))
            if (codes < 0).any():
                unknown = sorted(set(values.astype(str)) - set(self.labels))[:5]
                raise ValueError(f"target values {unknown} are not among the labels {self.labels}")
            return codes.astype(np.int64)
        return ((values.to_numpy(float) - self.mean) / self.scale).astype(np.float32).reshape(-1, 1)

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        """Network outputs to label names or values in the target's units."""
        if self.task == "classification":
            return np.asarray(self.labels, dtype=object)[outputs.argmax(axis=1)]
        return outputs[:, 0] * self.scale + self.mean

    def metadata(self) -> dict:
        return {"target_mean": self.mean, "target_scale": self.scale} if self.task == "regression" else {}


def loss_function(task: str) -> nn.Module:
    return nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str) -> dict:
    """Mean loss (and accuracy for classification) over a set, in large slices."""
    criterion = loss_function(task)
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), EVAL_BATCH):
            out = model(x[start : start + EVAL_BATCH]).float()
            target = y[start : start + EVAL_BATCH]
            loss_sum += criterion(out, target).item() * len(target)
            if task == "classification":
                correct += int((out.argmax(dim=1) == target).sum())
    model.train(was_training)
    result = {"loss": loss_sum / len(x)}
    if task == "classification":
        result["accuracy"] = correct / len(x)
    return result


def predict_outputs(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[s : s + EVAL_BATCH]).float().cpu() for s in range(0, len(x), EVAL_BATCH)]).numpy()


def training_flops_per_sample(model: nn.Module) -> int:
    """Multiply-adds of one forward and backward pass per row: 6 x the linear weights."""
    return 6 * sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def peak_memory_mb(device: torch.device | None = None) -> float:
    """Peak resident memory of this process (and peak CUDA memory when on a GPU), in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    if device is not None and device.type == "cuda":
        peak += torch.cuda.max_memory_allocated(device) / 2**20
    return round(peak, 1)


@dataclass
class FitConfig:
    epochs: int = 10
    batch_size: int = 4096  # rows per optimizer step, over all processes together
    lr: float = 0.01  # the Adam rate actually used (scale it with scaled_lr)
    seed: int = 0
    target_accuracy: float | None = None  # record the first moment validation accuracy reaches it
    eval_every_steps: int = 0  # also validate every this many steps (0: once per epoch)
    stop_at_target: bool = False  # stop as soon as target_accuracy is reached (benchmarks)
    max_seconds: float | None = None  # stop after this much training time
    amp: bool = True  # bfloat16 autocast on CUDA
    patience: int = 0  # stop after this many epochs without a better validation loss (0: never)


@dataclass
class FitResult:
    history: dict[str, list[float]]
    seconds: float
    samples: int  # rows processed by all processes together
    steps: int
    target_reached: dict | None  # {"epoch", "step", "samples", "seconds", "val_accuracy"} or None
    flops_per_sample: int
    best_epoch: int = 0  # the epoch whose weights the model holds at the end
    stop_reason: str = ""

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")

    @property
    def achieved_flops(self) -> float:
        return self.samples_per_second * self.flops_per_sample


def _global_batches(n: int, batch_size: int, where: Distributed) -> Iterator[tuple[int, int]]:
    """(start, stop) of this process's share of each global batch over `n` shuffled rows."""
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        if size < where.world_size:  # a share would be empty; every process skips it alike
            continue
        yield start + size * where.rank // where.world_size, start + size * (where.rank + 1) // where.world_size


@dataclass
class _Progress:
    """What the batch loop and validation share: counters, the clock and the time to target."""

    plain: nn.Module  # validation needs no gradient synchronisation
    val: tuple[torch.Tensor, torch.Tensor]
    task: str
    config: FitConfig
    started: float = field(default_factory=time.perf_counter)
    steps: int = 0
    samples: int = 0
    target_reached: dict | None = None

    def validate(self, epoch_position: float) -> dict:
        metrics = evaluate(self.plain, *self.val, self.task)
        target = self.config.target_accuracy
        if self.target_reached is None and target is not None and metrics.get("accuracy", -1.0) >= target:
            self.target_reached = {
                "epoch": round(epoch_position, 4),
                "step": self.steps,
                "samples": self.samples,
                "seconds": round(time.perf_counter() - self.started, 4),
                "val_accuracy": metrics["accuracy"],
            }
        return metrics

    def out_of_time(self) -> bool:
        limit = self.config.max_seconds
        return limit is not None and time.perf_counter() - self.started > limit

    @property
    def done(self) -> bool:
        return self.config.stop_at_target and self.target_reached is not None


@dataclass
class _Step:
    """One optimisation step's fixed parts: the model, its loss, optimizer and autocast settings."""

    model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    autocast: dict

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(**self.autocast):
            loss = self.criterion(self.model(x).float(), y)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def _train_epoch(step: _Step, data, epoch: int, generator, where: Distributed, progress: _Progress):
    """One pass over `data`; returns (loss sum, rows, stopped early)."""
    device = next(progress.plain.parameters()).device
    config = progress.config
    loss_sum, epoch_rows, seen_in_epoch = torch.zeros((), device=device), 0, 0
    for x, y in data.epoch_chunks(epoch):
        order = torch.randperm(len(x), generator=generator).to(device, non_blocking=True)
        x, y = x[order], y[order]  # one gather per chunk; every batch below is a contiguous view
        for lo, hi in _global_batches(len(x), config.batch_size, where):
            loss_sum += step(x[lo:hi], y[lo:hi]) * (hi - lo)
            epoch_rows += hi - lo
            progress.steps += 1
            progress.samples += (hi - lo) * where.world_size
            every = config.eval_every_steps
            if every and progress.steps % every == 0 and progress.target_reached is None:
                progress.validate(epoch + (seen_in_epoch + hi) / max(1, len(x)))
                if progress.done:
                    return loss_sum, epoch_rows, True
            if progress.out_of_time():
                return loss_sum, epoch_rows, True
        seen_in_epoch += len(x)
    return loss_sum, epoch_rows, False


def _epoch_totals(loss_sum: torch.Tensor, epoch_rows: int, where: Distributed) -> tuple[float, int]:
    """The epoch's loss sum and rows over every training process."""
    if where.world_size > 1:
        import torch.distributed as dist

        totals = torch.stack([loss_sum.float().cpu(), torch.tensor(float(epoch_rows))])
        dist.all_reduce(totals)
        return float(totals[0]), int(totals[1])
    return float(loss_sum), epoch_rows


def fit(
    model: nn.Module,
    data,
    val: tuple[torch.Tensor, torch.Tensor],
    task: str,
    config: FitConfig,
    where: Distributed = Distributed(),
    optimizer: torch.optim.Optimizer | None = None,
) -> FitResult:
    """Train `model` (a Net, or a DistributedDataParallel around one) on `data`'s chunks.

    `data` has `epoch_chunks(epoch)` yielding (x, y) tensors on the model's device: TensorData
    in memory, ParquetRows streamed. Validation runs on `val` after every epoch.
    """
    if config.epochs < 1 or config.batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {config.epochs} and {config.batch_size}")
    plain = getattr(model, "module", model)
    device = next(plain.parameters()).device
    autocast = {"device_type": device.type, "dtype": torch.bfloat16, "enabled": config.amp and device.type == "cuda"}
    step = _Step(model, loss_function(task), optimizer or torch.optim.Adam(model.parameters(), lr=config.lr), autocast)
    generator = torch.Generator().manual_seed(config.seed)  # the same order in every process
    history: dict[str, list[float]] = {"epoch": [], "train_loss": [], "val_loss": [], "seconds": []}
    if task == "classification":
        history["val_accuracy"] = []
    progress = _Progress(plain, val, task, config)
    stopper = EarlyStopping(config.patience)
    model.train()
    for epoch in range(config.epochs):
        loss_sum, epoch_rows, stopped = _train_epoch(step, data, epoch, generator, where, progress)
        loss_total, rows = _epoch_totals(loss_sum, epoch_rows, where)
        metrics = progress.validate(epoch + 1)
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(loss_total / max(1, rows))
        history["val_loss"].append(metrics["loss"])
        history["seconds"].append(round(time.perf_counter() - progress.started, 4))
        if task == "classification":
            history["val_accuracy"].append(metrics["accuracy"])
        if stopper.update(epoch + 1, metrics["loss"], plain) or stopped or progress.done:
            break
    best_epoch = stopper.restore_best(plain)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return FitResult(
        history=history,
        seconds=time.perf_counter() - progress.started,
        samples=progress.samples,
        steps=progress.steps,
        target_reached=progress.target_reached,
        flops_per_sample=training_flops_per_sample(plain),
        best_epoch=best_epoch,
        stop_reason=stopper.reason,
    )


def build_model(
    n_features: int,
    hidden_sizes: list[int],
    n_outputs: int,
    device: torch.device,
    where: Distributed = Distributed(),
    seed: int = 0,
) -> tuple[Net, nn.Module]:
    """(the Net, the module to train): the Net itself, or DistributedDataParallel around it.

    Seeded here so every process starts from the same weights.
    """
    torch.manual_seed(seed)
    net = Net(n_features=n_features, hidden_sizes=list(hidden_sizes), n_outputs=n_outputs).to(device)
    if where.world_size == 1:
        return net, net
    from torch.nn.parallel import DistributedDataParallel

    return net, DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
