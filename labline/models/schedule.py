"""How long and in what steps a network trains: a batch size that grows with the rows, and early
stopping on the validation split that keeps the best weights.

One schedule for every data set does not fit: Iris's 96 training rows want small batches and
many epochs; Census's 16,000 rows at batches of 16 spend 19 minutes on epochs that no longer
improve the validation loss. Both trainers (the teaching loop in notebooks/train_torch.ipynb and
`labline.models.torch_train.fit`) use these two pieces, so a schedule is decided in one place.

Example:
    >>> batch_size_for_rows(96), batch_size_for_rows(16_670)
    (16, 256)
    >>> stopper = EarlyStopping(patience=2)
    >>> [stopper.update(epoch, loss) for epoch, loss in enumerate([0.9, 0.5, 0.6, 0.7], start=1)]
    [False, False, False, True]
    >>> stopper.best_epoch, stopper.reason
    (2, 'no better validation loss for 2 epochs after epoch 2')
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

MIN_BATCH = 16
MAX_BATCH = 1024
STEPS_PER_EPOCH = 64  # the batch grows until an epoch is about this many optimizer steps


def batch_size_for_rows(rows: int, steps_per_epoch: int = STEPS_PER_EPOCH) -> int:
    """The power of two nearest `rows / steps_per_epoch`, between MIN_BATCH and MAX_BATCH."""
    if rows < 1 or steps_per_epoch < 1:
        raise ValueError(f"rows and steps_per_epoch must be positive, got {rows} and {steps_per_epoch}")
    wanted = rows / steps_per_epoch
    nearest = 2 ** round(math.log2(wanted)) if wanted >= 1 else 1
    return int(min(MAX_BATCH, max(MIN_BATCH, nearest)))


def resolve_batch_size(batch_size: int, rows: int) -> int:
    """A notebook's `batch_size` parameter: 0 means "grow with the rows"; any other value is kept."""
    if batch_size < 0:
        raise ValueError(f"batch_size must be 0 (grow with the rows) or positive, got {batch_size}")
    return batch_size or batch_size_for_rows(rows)


@dataclass
class EarlyStopping:
    """Stops training when the validation loss has not improved by `min_delta` for `patience`
    epochs, and holds a copy of the weights of the best epoch so they can be put back.

    `patience=0` never stops early: the schedule's last epoch is kept, as before.
    """

    patience: int
    min_delta: float = 0.0
    best_loss: float = math.inf
    best_epoch: int = 0
    last_epoch: int = 0
    best_state: dict | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.patience < 0 or self.min_delta < 0:
            raise ValueError(f"patience and min_delta must be >= 0, got {self.patience} and {self.min_delta}")

    def update(self, epoch: int, val_loss: float, model=None) -> bool:
        """Record one epoch's validation loss (and the model's weights if best); True: stop now."""
        self.last_epoch = epoch
        if not self.patience:
            return False
        if val_loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch = val_loss, epoch
            if model is not None:
                self.best_state = copy.deepcopy(model.state_dict())
        return epoch - self.best_epoch >= self.patience

    @property
    def stopped_early(self) -> bool:
        return bool(self.patience) and self.last_epoch - self.best_epoch >= self.patience

    @property
    def reason(self) -> str:
        if not self.patience:
            return f"ran all {self.last_epoch} epochs (no early stopping)"
        if self.stopped_early:
            return f"no better validation loss for {self.patience} epochs after epoch {self.best_epoch}"
        return f"ran all {self.last_epoch} epochs; best validation loss at epoch {self.best_epoch}"

    def restore_best(self, model) -> int:
        """Put the best epoch's weights back into `model`; returns the epoch they come from."""
        if self.best_state is None:
            return self.last_epoch
        model.load_state_dict(self.best_state)
        return self.best_epoch
