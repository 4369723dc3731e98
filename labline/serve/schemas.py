"""Request and response models generated from the data set's spec.

The spec is the one declaration of a data set's columns, so the service's request schema is
built from it rather than written by hand: numeric features are finite floats (NaN and
infinity refused) inside the spec's declared range, declared categories are closed sets (an
unknown value is a 422 that lists the allowed ones), extra fields are refused. Column names
that are not Python identifiers (Census's `marital-status`) are accepted as they are through
aliases.
"""

from __future__ import annotations

import keyword
import re
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from typing_extensions import TypedDict

from labline.data.frame import model_frame
from labline.data.spec import DatasetSpec


def python_name(column: str) -> str:
    """A valid, non-clashing attribute name for a column (`marital-status` -> `marital_status`)."""
    name = re.sub(r"\W", "_", column)
    if not name or name[0].isdigit():
        name = f"f_{name}"
    if keyword.iskeyword(name) or hasattr(BaseModel, name) or name.startswith("_"):
        name = f"{name.lstrip('_')}_field"
    return name


def example_record(spec: DatasetSpec) -> dict[str, Any]:
    """A realistic example for the OpenAPI schema: the data set's first row when it ships with
    labline, else a value inside each declared range or category."""
    try:
        from labline.data.datasets import BUILTIN, load_dataset

        if spec.name in BUILTIN:
            frame, _ = load_dataset(spec.name)
            row = frame.iloc[0]
            example = {c: (float(row[c]) if c in spec.numeric else str(row[c])) for c in spec.features}
            if all(v == v for v in example.values()):  # no NaN
                return example
    except Exception:  # the example is documentation; a data set that fails to load must not stop serving
        pass
    example: dict[str, Any] = {}
    for column in spec.numeric:
        low, high = spec.ranges.get(column, [0.0, 1.0])
        example[column] = float(low + (high - low) / 4)
    for column in spec.categorical:
        example[column] = (spec.categories.get(column) or ["value"])[0]
    for column in spec.text:
        example[column] = "some text"
    return example


def _field_type(spec: DatasetSpec, column: str) -> Any:
    nullable = spec.max_missing_rate > 0
    if column in spec.numeric:
        # the declared range is what validation enforces on training data; the service agrees
        low, high = (spec.ranges.get(column) or [None, None])[:2]
        kind: Any = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=low, le=high)]
    elif column in spec.categorical and spec.categories.get(column):
        kind = Literal[tuple(str(c) for c in spec.categories[column])]
    else:
        kind = Annotated[str, Field(strict=True, max_length=100_000)]
    return kind | None if nullable else kind


class RecordSchema:
    """The generated pydantic models for one spec, and the conversions the service needs."""

    def __init__(self, spec: DatasetSpec, max_batch_records: int = 50_000):
        self.spec = spec
        self.names = {column: python_name(column) for column in spec.features}
        example = example_record(spec)
        fields = {
            self.names[c]: (_field_type(spec, c), Field(..., alias=c, examples=[example[c]])) for c in spec.features
        }
        config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra={"examples": [example]})
        self.example = example
        self.record_model: type[BaseModel] = create_model(f"{_title(spec.name)}Record", __config__=config, **fields)
        batch_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"records": [example]}]})
        self.batch_model: type[BaseModel] = create_model(
            f"{_title(spec.name)}Batch",
            __config__=batch_config,
            records=(Annotated[list[self.record_model], Field(min_length=1, max_length=max_batch_records)], ...),
        )
        # The same fields as plain dicts keyed by the spec's names: pydantic-core validates a
        # batch straight into the payloads the service scores and logs, with no model objects.
        forbid = ConfigDict(extra="forbid")
        payload_type = TypedDict(f"{_title(spec.name)}Payload", {c: _field_type(spec, c) for c in spec.features})
        payload_type.__pydantic_config__ = forbid  # type: ignore[attr-defined]
        batch_type = TypedDict(  # noqa: UP013 - the name is the data set's
            f"{_title(spec.name)}Payloads",
            {"records": Annotated[list[payload_type], Field(min_length=1, max_length=max_batch_records)]},
        )
        batch_type.__pydantic_config__ = forbid  # type: ignore[attr-defined]
        self._batch_payloads = TypeAdapter(batch_type)

    def payload(self, record: BaseModel) -> dict[str, Any]:
        """The record as the client sent it, under the original column names (for the log)."""
        return {c: getattr(record, n) for c, n in self.names.items()}

    def batch_payloads(self, body: bytes) -> list[dict[str, Any]]:
        """A batch body's records as payloads, parsed and validated by pydantic-core in one pass.

        A body the fast path refuses is validated again by `batch_model`, which also accepts
        the Python-style names of hyphenated columns and whose errors are the ones clients see,
        the same as `/predict`'s. Raises pydantic's ValidationError.
        """
        try:
            return self._batch_payloads.validate_json(body)["records"]
        except ValidationError:
            batch = self.batch_model.model_validate_json(body)
            return [self.payload(record) for record in batch.records]

    def frame(self, payloads: list[dict[str, Any]]) -> pd.DataFrame:
        return features_frame(self.spec, payloads)


def features_frame(spec: DatasetSpec, payloads: list[dict[str, Any]]) -> pd.DataFrame:
    """The model's input frame for validated payloads: the one conversion training used
    (labline.data.frame.model_frame), so serving, micro-batching and replay see what training saw."""
    return model_frame(spec, payloads)


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"\W|_", name) if part) or "Model"


class PredictAnswer(BaseModel):
    """One answer: the prediction, its class probabilities, and who answered."""

    request_id: str
    prediction: Any
    probabilities: dict[str, float] | None = None
    model_version: int | None = None
    artifact_sha256: str
    arm: str


class RecordAnswer(BaseModel):
    """One record's answer in a batch: its request id (`<batch_id>-<i>`) and prediction."""

    request_id: str
    prediction: Any
    probabilities: dict[str, float] | None = None


class BatchAnswer(BaseModel):
    """A batch is one client's request, answered by one model: who answered is said once."""

    batch_id: str
    model_version: int | None = None
    artifact_sha256: str
    arm: str
    answers: list[RecordAnswer]
