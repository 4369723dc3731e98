"""Data sets: declarations, loading, snapshots and validation."""

from labline.data.datasets import DatasetError, get_spec, load_dataset
from labline.data.spec import DatasetSpec, infer_spec

__all__ = ["DatasetSpec", "DatasetError", "infer_spec", "load_dataset", "get_spec"]
