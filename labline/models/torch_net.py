"""The PyTorch network: a small multi-layer perceptron.

The train_torch notebook shows this class to students; the service and batch inference import
it from here, so the architecture that was trained is the one that answers.
"""

from __future__ import annotations

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


def pick_device(requested: str = "auto") -> torch.device:
    """`auto` means CUDA when present, else CPU; anything else is passed to torch as is."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a run is repeatable."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
