"""Candidate prompts for building references and selecting data.

Accepts our sample format (`id`, `prompt`, optional `references`, `criteria`, `lang`, `length`, `domain`) and
WritingBench's (`index`, `query`, `checklist`, `domain1`, `domain2`), from any path. WritingBench's two
domain levels stay two fields (`domain1`, `domain2`), as its per-domain scores read them: a name may hold
a "/" ("Politics & Law/Policy" is no pair). `domain` joins them with "/" for display and the sample files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .data import CriteriaField, LineError, SampleFileError, SampleId, criteria_as_text
from .jsonl import LineProblem, jsonl_rows

_CJK = re.compile(r"[\u4e00-\u9fff]")


class PromptRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: SampleId
    prompt: str
    criteria: CriteriaField = None
    lang: str | None = None
    length: int | None = None
    domain: str | None = None
    domain1: str | None = None  # WritingBench's domain levels; our format's `domain` is its domain1
    domain2: str | None = None
    references: list[str] = []  # existing references, kept as sources "given-0", "given-1", ...

    @property
    def criteria_text(self) -> str | None:
        return criteria_as_text(self.criteria)


def guess_lang(text: str) -> str:
    """'zh' when a fair share of the text is Chinese characters, else 'en'."""
    return "zh" if len(_CJK.findall(text)) >= max(1, len(text) // 10) else "en"


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    if "query" in row and "prompt" not in row:  # WritingBench
        row = {
            "id": row.get("index", row.get("id")),
            "prompt": row["query"],
            "criteria": row.get("checklist"),
            "domain": "/".join(x for x in (row.get("domain1"), row.get("domain2")) if x) or None,
            "domain1": row.get("domain1"),
            "domain2": row.get("domain2"),
            "length": row.get("length"),
        }
    else:
        row = {**row, "domain1": row.get("domain1", row.get("domain"))}  # one level, never split at "/"
    keep = {
        k: row[k]
        for k in ("id", "prompt", "criteria", "lang", "length", "domain", "domain1", "domain2", "references")
        if row.get(k) is not None
    }
    if isinstance(keep.get("prompt"), list):  # chat prompt: its text, turns joined
        keep["prompt"] = "\n\n".join(m.get("content", "") for m in keep["prompt"])
    keep.setdefault("lang", guess_lang(str(keep.get("prompt", ""))))
    return keep


def load_prompts(path: str | Path) -> list[PromptRecord]:
    """Every bad line is reported (like `validate`), nothing is half-loaded."""
    records, errors, seen = [], [], set()
    for line_no, row in jsonl_rows(path):
        try:
            if isinstance(row, LineProblem):
                raise row
            record = PromptRecord.model_validate(_normalise(row))
        except (LineProblem, ValidationError, KeyError, AttributeError, TypeError) as err:
            errors.append(LineError(line_no, str(err).splitlines()[0][:300]))
            continue
        key = json.dumps(record.id)
        if key in seen:
            errors.append(LineError(line_no, f"duplicate id {record.id!r}"))
            continue
        seen.add(key)
        records.append(record)
    if errors:
        raise SampleFileError(str(path), errors)
    return records
