"""Model files whose bytes depend only on the model: the same weights give the same artifact hash.

skops names each array file after the Python object's id() (`140290288308112.npy`), records
those ids in schema.json (`__id__`), and stamps every zip entry with the time of the save: two
saves of identical pipelines differ in all three. `skops_bytes` renumbers the ids in the order
the schema first mentions them (and the ids some estimators keep, ID_ATTRIBUTES), writes the
entries in name order, and gives every entry the same fixed time; skops loads the result as it
loads its own files (the ids only pair up references inside one file). PyTorch's `torch.save`
zip is already stable (fixed entry times, a serialization id computed from the content), which
tests/test_artifact.py checks.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import skops.io as sio

SCHEMA = "schema.json"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
# Estimator attributes that hold an id() of the saving process (TfidfVectorizer remembers its
# stop-word list's id only to skip re-checking it): renumbered like skops's own ids.
ID_ATTRIBUTES = ("_stop_words_id",)
_ID_FILE = re.compile(r"^(\d+)(\.\w+)$")  # `<id>.npy`, `<id>.npz`: files skops names after id()


def skops_bytes(obj: Any) -> bytes:
    """`obj` serialised by skops, with ids renumbered and entries in a fixed order and time."""
    with zipfile.ZipFile(io.BytesIO(sio.dumps(obj))) as source:
        schema = json.loads(source.read(SCHEMA))
        numbers: dict[int, int] = {}
        schema = _renumber(schema, numbers)
        files = {SCHEMA: json.dumps(schema, indent=2).encode()}
        for name in source.namelist():
            if name != SCHEMA:
                files[_renamed(name, numbers)] = source.read(name)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o600 << 16
            target.writestr(info, files[name])
    return out.getvalue()


def dump_skops(obj: Any, path: str | Path) -> None:
    """Write `obj` to `path` as `skops_bytes` does."""
    Path(path).write_bytes(skops_bytes(obj))


def _number(old: int, numbers: dict[int, int]) -> int:
    return numbers.setdefault(old, len(numbers) + 1)


def _renamed(name: str, numbers: dict[int, int]) -> str:
    match = _ID_FILE.match(name)
    if not match:
        return name
    return f"{_number(int(match[1]), numbers)}{match[2]}"


def _renumber(node: Any, numbers: dict[int, int]) -> Any:
    """The schema with every object id replaced by its order of first mention (walked in key order,
    which skops writes deterministically for the same object)."""
    if isinstance(node, list):
        return [_renumber(item, numbers) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "__id__" and isinstance(value, int):
            out[key] = _number(value, numbers)
        elif key == "file" and isinstance(value, str) and _ID_FILE.match(value):
            out[key] = _renamed(value, numbers)
        elif key in ID_ATTRIBUTES and isinstance(value, dict) and str(value.get("content", "")).isdigit():
            out[key] = {**_renumber(value, numbers), "content": str(_number(int(value["content"]), numbers))}
        else:
            out[key] = _renumber(value, numbers)
    return out
