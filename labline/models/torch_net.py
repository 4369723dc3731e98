"""The PyTorch network: a small multi-layer perceptron.

The train_torch notebook shows this class to students; the service and batch inference import
it from here, so the architecture that was trained is the one that answers. `select_device` is
the one place that decides where a network runs (and how many CPU threads it gets).
"""

from __future__ import annotations

import os

import torch
from torch import nn


class Net(nn.Module):
    """Fully connected layers with ReLU between them; `n_outputs` logits (or 1 value for regression)."""

    def __init__(self, n_features: int, hidden_sizes: list[int], n_outputs: int, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, n_outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def available_cores() -> int:
    """Cores this process may run on (its affinity), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_threads(processes_per_machine: int = 1) -> int:
    """Threads for torch on CPU: `OMP_NUM_THREADS` when set, else the cores not already busy.

    Cores already busy with other work are left out (from the 1-minute load average): OpenMP
    threads that wait on each other across oversubscribed cores make small steps 20x slower.
    """
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    cores = available_cores()
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    idle = max(1, min(cores, int(cores - busy + 0.5)))
    return max(1, idle // processes_per_machine)


def select_device(requested: str = "auto", processes_per_machine: int = 1) -> torch.device:
    """The device to train or predict on: `auto` is CUDA when present, else CPU.

    On CPU torch's thread count is set from the idle cores, shared by `processes_per_machine`
    processes (torchrun's local world).
    """
    if requested not in ("auto", "cpu", "cuda") and not requested.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {requested!r}")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(processes_per_machine))
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a run is repeatable."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
