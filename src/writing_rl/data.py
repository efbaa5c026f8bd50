"""Training samples: schema, loading from JSONL or Hugging Face datasets, and validation.

A sample's `id` keeps its JSON type (int or string): the published code turned integer ids into
string keys after the first save and lost them; here an id is always compared and stored typed
(see `sample_key`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    StrictInt,
    StrictStr,
    ValidationError,
    model_serializer,
    model_validator,
)

from .jsonl import jsonl_rows

SampleId = Union[StrictInt, StrictStr]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: StrictStr


class Criterion(BaseModel):
    """A WritingBench-style criterion: name, description, and score-band texts ("1-2" ... "9-10").

    `model_dump()` keeps the keys in the order the record gave them: the official WritingBench critic prompt
    prints the checklist entry as it is (`str(dict)`), so a file whose entries start with another key must
    reach the critic in that order (pydantic alone puts the declared fields first)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: StrictStr
    criteria_description: StrictStr
    _key_order: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _remember_key_order(cls, data: Any, handler: ModelWrapValidatorHandler[Criterion]) -> Criterion:
        criterion = handler(data)
        if isinstance(data, Mapping):
            criterion._key_order = tuple(data)
        return criterion

    @model_serializer(mode="wrap")
    def _in_key_order(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped = handler(self)
        rank = {key: i for i, key in enumerate(self._key_order)}
        return dict(sorted(dumped.items(), key=lambda item: rank.get(item[0], len(rank))))

    @property
    def bands(self) -> dict[str, str]:
        return {k: v for k, v in (self.model_extra or {}).items() if isinstance(v, str)}

    def as_text(self) -> str:
        return f"{self.name}: {self.criteria_description}"


CriteriaField = Union[StrictStr, list[Union[StrictStr, Criterion]], None]


def criteria_as_text(criteria: CriteriaField) -> str | None:
    """One text block for the pairwise judge."""
    if criteria is None or isinstance(criteria, str):
        return criteria
    return "\n".join(f"- {c.as_text() if isinstance(c, Criterion) else c}" for c in criteria)


class Sample(BaseModel):
    """One training prompt with its references, weakest first."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: SampleId
    prompt: Annotated[StrictStr, Field(min_length=1)] | Annotated[list[ChatMessage], Field(min_length=1)]
    references: Annotated[list[Annotated[StrictStr, Field(min_length=1)]], Field(min_length=1)]
    criteria: CriteriaField = None
    lang: StrictStr | None = None
    length: Annotated[StrictInt, Field(gt=0)] | None = None
    reference_scores: list[float | None] | None = None

    @model_validator(mode="after")
    def _scores_match_references(self) -> Sample:
        scores = self.reference_scores
        if scores is None:
            return self
        if len(scores) != len(self.references):
            raise ValueError(f"reference_scores has {len(scores)} entries but references has {len(self.references)}")
        known = [(i, s) for i, s in enumerate(scores) if s is not None]
        for (i, prev), (j, cur) in pairwise(known):
            if cur < prev:
                raise ValueError(
                    f"references out of order: reference {j} scores {cur} < reference {i} scores {prev} "
                    "(references must be sorted weakest first)"
                )
        return self

    @property
    def key(self) -> str:
        return sample_key(self.id)

    @property
    def prompt_text(self) -> str:
        """The prompt as plain text (the last user turn of a chat prompt, after any earlier turns)."""
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n\n".join(f"{m.role}: {m.content}" if m.role != "user" else m.content for m in self.prompt)

    @property
    def criteria_text(self) -> str | None:
        return criteria_as_text(self.criteria)


def sample_key(sample_id: SampleId) -> str:
    """Typed, stable string key for an id: 5 -> '5', "5" -> '"5"' (never confused)."""
    if isinstance(sample_id, bool) or not isinstance(sample_id, (int, str)):
        raise TypeError(f"sample id must be int or str, got {type(sample_id).__name__}")
    return json.dumps(sample_id, ensure_ascii=False)


@dataclass(frozen=True)
class LineError:
    line: int
    message: str
    unit: str = "line"  # "row" for Hugging Face datasets

    def __str__(self) -> str:
        return f"{self.unit} {self.line}: {self.message}"


@dataclass(frozen=True)
class FieldWarning:
    """An unknown field close to a known one (`critera`): kept as an extra field, as any other, but most likely
    a misspelling that leaves the known field unset. One per field name, counting the lines that have it."""

    field: str
    suggestion: str  # the known field it is close to
    line: int  # the first line that has it
    count: int = 1
    unit: str = "line"

    def __str__(self) -> str:
        lines = f"{self.count} {self.unit}{'s' if self.count > 1 else ''}"
        return (
            f"{self.unit} {self.line}: unknown field '{self.field}' (did you mean '{self.suggestion}'?), on {lines}; "
            f"kept as an extra field, so '{self.suggestion}' is unset there"
        )


class SampleFieldWarning(UserWarning):
    """Raised (as a warning) by the loaders for each `FieldWarning` of a file; `writing-rl check` lists them."""


@dataclass
class ValidationReport:
    samples: list[Sample] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    warnings: list[FieldWarning] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class SampleFileError(ValueError):
    """Raised when a sample file has bad lines; carries every error, not just the first."""

    exit_code = 1  # as `validate` exits for bad lines

    def __init__(self, source: str, errors: list[LineError]):
        self.errors = errors
        if len(errors) == 1:  # one line: "samples.jsonl: line 3: not valid UTF-8 ..."
            super().__init__(f"{source}: {errors[0]}")
            return
        shown = "\n".join(f"  {e}" for e in errors[:50])
        more = f"\n  ... and {len(errors) - 50} more" if len(errors) > 50 else ""
        super().__init__(f"{source}: {len(errors)} bad record(s):\n{shown}{more}")


_FIELD_NAMES = set(Sample.model_fields) | {"role", "content", "name", "criteria_description"}


def _describe(err: ValidationError) -> str:
    """One readable message per bad field; union alternatives (int | str, text | messages) are merged."""
    by_field: dict[str, list[dict[str, Any]]] = {}
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if isinstance(p, int) or p in _FIELD_NAMES)
        by_field.setdefault(loc, []).append(e)
    # A union's failed alternative (prompt as text) is noise when a deeper field says what is wrong.
    for loc in [k for k in by_field if any(o.startswith(k + ".") for o in by_field if o != k)]:
        del by_field[loc]
    parts = []
    for loc, errs in by_field.items():
        first = errs[0]
        if first["type"] == "missing":
            parts.append(f"missing field '{loc}'")
        elif not loc and first["type"] == "value_error":
            parts.append(str(first["ctx"]["error"]) if "ctx" in first else first["msg"])
        else:
            got = first.get("input")
            got_s = (
                repr(got) if isinstance(got, (str, int, float)) and not isinstance(got, bool) else type(got).__name__
            )
            if len(got_s) > 40:
                got_s = got_s[:40] + "..."
            what = first["msg"] if len(errs) == 1 else "; or ".join(dict.fromkeys(e["msg"] for e in errs))
            parts.append(f"field '{loc}': {what} (got {got_s})")
    return "; ".join(parts)


def misspelt_fields(record: Mapping[str, Any]) -> dict[str, str]:
    """Unknown keys of a sample record that look like a known field this record lacks: {key: known field}.
    A key close to a field the record already has (`prompt_id` beside `prompt`) is an extra field, not a typo."""
    from .config import did_you_mean  # not at the top: config imports modules that import this one

    absent = [name for name in Sample.model_fields if name not in record]
    found = {}
    for key in record:
        if key not in Sample.model_fields and (hint := did_you_mean(str(key), absent)):
            found[str(key)] = hint.split("'")[1]  # "; did you mean 'criteria'?"
    return found


def validate_records(records: Iterable[tuple[int, Any]], unit: str = "line") -> ValidationReport:
    """Check (line number, parsed object) pairs; a failed JSON parse is passed as an exception."""
    report = ValidationReport()
    misspelt: dict[tuple[str, str], list[int]] = {}  # (key, known field) -> the lines that have it

    def bad(line_no: int, message: str) -> None:
        report.errors.append(LineError(line_no, message, unit))

    seen: dict[str, int] = {}
    for line_no, obj in records:
        if isinstance(obj, Exception):  # the line could not be read (bad bytes or bad JSON)
            bad(line_no, str(obj))
            continue
        if not isinstance(obj, Mapping):
            bad(line_no, f"expected a JSON object, got {type(obj).__name__}")
            continue
        for key, known in misspelt_fields(obj).items():
            misspelt.setdefault((key, known), []).append(line_no)
        try:
            sample = Sample.model_validate(dict(obj))
        except ValidationError as err:
            bad(line_no, _describe(err))
            continue
        if sample.key in seen:
            bad(line_no, f"duplicate id {sample.id!r} (first seen on {unit} {seen[sample.key]})")
            continue
        seen[sample.key] = line_no
        report.samples.append(sample)
    report.warnings = [FieldWarning(k, known, lines[0], len(lines), unit) for (k, known), lines in misspelt.items()]
    return report


def warn_fields(source: str, report: ValidationReport) -> None:
    """Each `FieldWarning` as a `SampleFieldWarning` naming the file (the loaders return samples, not reports)."""
    for w in report.warnings:
        warnings.warn(f"{source}: {w}", SampleFieldWarning, stacklevel=3)


def validate_jsonl(path: str | Path) -> ValidationReport:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such sample file: {path}")
    report = validate_records(jsonl_rows(path))
    if not report.samples and not report.errors:
        report.errors.append(LineError(0, "file holds no samples"))
    return report


def load_jsonl(path: str | Path) -> list[Sample]:
    """Load samples from JSONL; raise `SampleFileError` listing every bad line."""
    report = validate_jsonl(path)
    if not report.ok:
        raise SampleFileError(str(path), report.errors)
    warn_fields(str(path), report)
    return report.samples


def load_hf(dataset: Any, split: str | None = None) -> list[Sample]:
    """Load samples from a `datasets.Dataset`, or a name/path given to `datasets.load_dataset`.

    Row numbers in errors are 1-based dataset row indices.
    """
    if isinstance(dataset, (str, Path)):
        import datasets

        dataset = datasets.load_dataset(str(dataset), split=split or "train")
    elif split is not None:
        dataset = dataset[split]
    report = validate_records(((i, dict(row)) for i, row in enumerate(dataset, start=1)), unit="row")
    if not report.ok:
        raise SampleFileError("dataset", report.errors)
    warn_fields("dataset", report)
    return report.samples


def load_samples(source: Any, split: str | None = None) -> list[Sample]:
    """Load from a `.jsonl` path, or anything `load_hf` accepts."""
    if isinstance(source, (str, Path)) and str(source).endswith(".jsonl") and Path(source).is_file():
        return load_jsonl(source)
    return load_hf(source, split=split)
