"""Which data set a model version belongs to: the scope its aliases live in.

As in MLflow, where an alias belongs to one registered model, an alias here belongs to one data
set: `champion` of iris and `champion` of census are two aliases, and promoting a Census model
never moves the Iris champion. A scope is the data set's declared name (the spec's `name`:
`iris`, `census`, `airbnb`, `iris_synth`, or a file's stem). A reference `DATASET@ALIAS`
(`iris@champion`) names an alias of one scope; a plain alias is found in whichever scope holds it.
"""

from __future__ import annotations

from pathlib import PurePath

DEFAULT_SCOPE = "default"  # versions registered before scopes existed, with no data set recorded


def dataset_scope(dataset: str | None) -> str:
    """The scope of a data set reference: `census:PATH` -> census, `/x/houses.csv` -> houses."""
    if not dataset or not str(dataset).strip():
        return DEFAULT_SCOPE
    text = str(dataset).strip()
    name, sep, _ = text.partition(":")
    if sep and "/" not in name and "\\" not in name:  # a built-in with an argument, not a path
        return name
    return PurePath(text).name.split(".")[0] or DEFAULT_SCOPE


def split_ref(ref: str) -> tuple[str | None, str]:
    """`iris@champion` -> ("iris", "champion"); `champion` -> (None, "champion")."""
    scope, sep, alias = str(ref).strip().rpartition("@")
    return (scope or None, alias) if sep else (None, alias)
