"""Reading what a notebook glued, behind one small interface.

scrapbook is unmaintained upstream, so every other module goes through here: if it ever has to
be replaced, only this file changes. Values are returned JSON-ready for manifests; DataFrames
become {"__dataframe__": {"columns", "index", "data"}} and come back with `to_frame`.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

FRAME_KEY = "__dataframe__"


def jsonable(value: Any) -> Any:
    """Turn a scrap's value into something json.dumps accepts without losing its shape."""
    pd = sys.modules.get("pandas")  # a value can only be a DataFrame if pandas is loaded already
    if pd is not None and isinstance(value, pd.DataFrame):
        split = value.to_dict(orient="split")
        return {FRAME_KEY: {k: jsonable(split[k]) for k in ("columns", "index", "data")}}
    if pd is not None and isinstance(value, pd.Series):
        return jsonable(value.to_dict())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return jsonable(value.item())
        except (ValueError, TypeError):
            pass
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def to_frame(value: Any) -> pd.DataFrame:  # noqa: F821
    """Rebuild a DataFrame scrap stored by `jsonable`."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, dict) and FRAME_KEY in value:
        parts = value[FRAME_KEY]
        return pd.DataFrame(parts["data"], index=parts["index"], columns=parts["columns"])
    raise TypeError(f"not a glued DataFrame: {type(value).__name__}")


def read_scraps(notebook: str | Path) -> dict[str, Any]:
    """Every scrap glued in an executed notebook, JSON-ready. Empty when the file is missing."""
    path = Path(notebook)
    if not path.exists():
        return {}
    from runner.lazy_imports import defer_slow_imports

    defer_slow_imports()
    import scrapbook as sb

    try:
        book = sb.read_notebook(str(path))
    except Exception:  # a notebook cut off mid-write has no readable scraps; the error says why elsewhere
        return {}
    return {name: jsonable(scrap.data) for name, scrap in book.scraps.items()}
