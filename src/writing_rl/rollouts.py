"""Rollout records: what the judge said about each completion, one JSON line per completion.

A user must be able to answer "why did this completion get this reward?" from the run folder alone:
each record holds the sample, the step, the reference level and source, the completion, every judged
order's verdict, probabilities and judge text (and how many tokens of each answer were cut to fit the
judge's context), the reward with its components kept apart, what the injection screen found
(`injection`), and, when the reward is missing, its reason code (`missing_reason`: transport,
timeout, http_status, bad_response, credentials, parse, no_verdict_mass, context_overflow, injection,
not_applicable, internal) with the details in words (`missing_detail`). Texts longer than `max_text_chars` are kept as a hash and a length;
the file stops growing at `max_mb` (one warning says so).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .jsonl import read_jsonl

ROLLOUTS_FILE = "rollouts.jsonl"


class RolloutSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_text_chars: int = Field(20_000, ge=0, description="longer completion / judge texts are kept as hash + length")
    max_mb: float = Field(512.0, gt=0, description="stop writing records once the file reaches this size")


def capped(text: str, limit: int) -> dict[str, Any]:
    """The text itself, or its sha256 and length when it is over the cap."""
    if len(text) <= limit:
        return {"text": text, "chars": len(text)}
    return {"text": None, "chars": len(text), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


class RolloutWriter:
    """Appends records to `rollouts.jsonl` (main process only) until the size cap."""

    def __init__(self, run_dir: Path, settings: RolloutSettings):
        self.path = run_dir / ROLLOUTS_FILE
        self.settings = settings
        self.stopped = False

    def write(self, records: list[dict[str, Any]]) -> int:
        if not self.settings.enabled or self.stopped or not records:
            return 0
        limit = self.settings.max_mb * 1024 * 1024
        written = 0
        with self.path.open("a", encoding="utf-8") as fh:
            for record in records:
                if fh.tell() >= limit:
                    self.stopped = True
                    warnings.warn(
                        f"{self.path} reached rollouts.max_mb={self.settings.max_mb:g}: no more rollout records "
                        "are written for this run",
                        stacklevel=2,
                    )
                    break
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                written += 1
        return written


def read_rollouts(path: Path, step: int | None = None, sample: str | None = None) -> list[dict[str, Any]]:
    """Records of a run folder (or a rollouts file), filtered by step and by sample id or key."""
    path = path / ROLLOUTS_FILE if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no rollout records at {path}")
    rows = read_jsonl(path)
    if step is not None:
        rows = [r for r in rows if r["step"] == step]
    if sample is not None:
        rows = [r for r in rows if sample in (r["sample"], str(r["sample_id"]))]
    return rows


def _text(field: dict[str, Any]) -> str:
    if field.get("text") is not None:
        return field["text"]
    return f"<{field['chars']} characters, sha256 {field.get('sha256', '?')[:16]}… (over the size cap)>"


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in (text.splitlines() or [""]))


def format_rollout(r: dict[str, Any]) -> str:
    """A readable block: header, completion, each judged order, reward and components."""
    reward = "missing" if r["reward"] is None else f"{r['reward']:.3f}"
    comps = ", ".join(f"{k} {v:.3f}" for k, v in r["components"].items() if v is not None)
    why = r.get("missing_reason")
    detail = r.get("missing_detail")
    lines = [
        f"── step {r['step']} · sample {r['sample_id']} · completion {r['index']} · "
        f"reference level {r['level']}/{r['n_levels'] - 1} ({r['reference_source']})",
        f"  reward {reward} ({comps or 'no components'}); outcome {r['outcome'] or 'unknown'}"
        + (f"; missing because: {why}" + (f" ({detail})" if detail else "") if why else ""),
    ]
    if r.get("injection"):
        found = r["injection"]
        lines.append(f"  injection screen: {', '.join(found['rules'])}: {found['excerpt']!r}")
    lines += ["  completion:", _indent(_text(r["completion"]))]
    for j in r["judgements"]:
        probs = j.get("probs")
        shown = f" P(A) {probs['a']:.2f} P(B) {probs['b']:.2f} P(tie) {probs['tie']:.2f}" if probs else ""
        error = f" error ({j.get('reason') or 'unknown'}): {j['error']}" if j.get("error") else ""
        cut = j.get("truncated")
        cut_shown = f" (answers cut to fit: A -{cut[0]}, B -{cut[1]} tokens)" if cut and any(cut) else ""
        lines.append(f"  judged {j['order'].replace('_', ' ')}: verdict {j['verdict']}{shown}{cut_shown}{error}")
        if j["text"].get("text") or j["text"].get("sha256"):
            lines.append(_indent(_text(j["text"]), "      "))
    return "\n".join(lines)
