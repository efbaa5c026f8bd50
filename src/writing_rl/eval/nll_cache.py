"""Base-model NLLs kept on disk, so that re-running an ablation's report (`--report-only`, another `--compare-to`,
a seed added) scores only the answers it has not scored before: scoring every held-out answer under the base model
is minutes on a CPU, the rest of the report seconds."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from ..jsonl import jsonl_rows

Scorer = Callable[[str, Sequence[tuple[str, str]]], list[float]]


def nll_key(model: str, prompt: str, answer: str) -> str:
    """One (model, prompt, answer): `model` is the base model's fingerprint, so a changed model scores anew."""
    return hashlib.sha256(json.dumps([model, prompt, answer]).encode()).hexdigest()[:32]


def _known(cache: Path) -> dict[str, float]:
    """The scores on disk; a line cut off by a crash, or not a score, is skipped (it is scored again)."""
    known: dict[str, float] = {}
    if cache.is_file():
        for _, row in jsonl_rows(cache):
            if isinstance(row, dict) and isinstance(row.get("key"), str) and isinstance(row.get("nll"), float):
                known[row["key"]] = row["nll"]
    return known


def cached_nll(
    model_path: str, fingerprint: str, pairs: Sequence[tuple[str, str]], cache: Path, score: Scorer
) -> list[float]:
    """`score(model_path, pairs)`, computed only for the (prompt, answer) pairs `cache` lacks under `fingerprint`
    (each distinct one once), which are then appended to it a line each: processes sharing the file at worst
    score an answer twice, and a line cut off by a crash is scored again next time."""
    keys = [nll_key(fingerprint, p, a) for p, a in pairs]
    known = _known(cache)
    todo = {k: pair for k, pair in zip(keys, pairs) if k not in known}
    if todo:
        values = score(model_path, list(todo.values()))
        cache.parent.mkdir(parents=True, exist_ok=True)
        with cache.open("a", encoding="utf-8") as fh:
            for k, v in zip(todo, values):
                fh.write(json.dumps({"key": k, "nll": float(v)}) + "\n")
                known[k] = float(v)
    return [known[k] for k in keys]
