"""What each eval task reads from a record of its files, and what a file of another kind looks like, so that
`writing-rl check` names a file given under the wrong task ("a LongBench-Write file, given as
tasks.writingbench") before the run, instead of the run stopping at its first record, or after generating.

The fields are the ones the task's code reads: `prompts.load_prompts` for WritingBench (its own format or
our samples'), `EvalRun.longbench_write` (`prompt`, `length`), `longctx.REQUIRED` for LongBench v2, and a
sample's required fields for the arena.
"""

from __future__ import annotations

from typing import Any

from ..data import Sample
from . import longctx

# Per task, the fields each record needs; a tuple of several names: any one of them will do.
NEEDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "writingbench": (("query", "prompt"), ("index", "id")),
    "longbench_write": (("prompt",), ("length",)),
    "longbench_v2": tuple((k,) for k in longctx.REQUIRED),
    "arena": tuple((name,) for name, f in Sample.model_fields.items() if f.is_required()),
}
TASK_NAMES = {
    "writingbench": "WritingBench",
    "longbench_write": "LongBench-Write",
    "longbench_v2": "LongBench v2",
    "arena": "arena",
}
# What a record of a known kind of file holds: (the kind, the fields that identify it, where it belongs).
KNOWN_FILES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("a WritingBench file", ("index", "query", "checklist"), "tasks.writingbench.path"),
    ("a LongBench-Write file", ("prompt", "type", "length"), "tasks.longbench_write.path"),
    ("a LongBench v2 file", ("_id", "question", "choice_A", "context"), "tasks.longbench_v2.path"),
    ("an eval's generations.jsonl", ("task", "id", "prompt", "output"), "tasks.arena.opponents (its folder)"),
    ("an eval's judgements.jsonl", ("task", "id", "score"), "nowhere in tasks: an eval's output"),
    ("a build-refs pool", ("id", "prompt", "candidates"), "select's pool (`writing-rl select`)"),
    ("a samples file", ("id", "prompt", "references"), "tasks.arena.samples, or tasks.writingbench.path"),
)


def looks_like(row: dict[str, Any]) -> str | None:
    """'a LongBench-Write file (prompt, type, length), which goes under tasks.longbench_write.path', or None."""
    for kind, fields, where in KNOWN_FILES:
        if all(f in row for f in fields):
            return f"{kind} ({', '.join(fields)}), which goes under {where}"
    return None


def _need_text(alternatives: tuple[str, ...]) -> str:
    return f"'{alternatives[0]}'" + "".join(f" (or '{a}')" for a in alternatives[1:])


def _bad_length(row: dict[str, Any]) -> str | None:
    """LongBench-Write's required length is read with `int()`: a whole number above 0."""
    value = row["length"]
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        return f"its 'length' is {value!r}, not a whole number of words (or Chinese characters)"
    return None if int(value) > 0 else "its 'length' is 0"


def record_problem(task: str, row: Any) -> str | None:
    """What the task cannot read in this record (missing fields first), or None."""
    if not isinstance(row, dict):
        return f"it is a JSON {type(row).__name__}, not an object"
    missing = [alts for alts in NEEDS[task] if not any(a in row for a in alts)]
    if missing:
        names = [_need_text(alts) for alts in missing]
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        return f"it lacks {listed}, which the {TASK_NAMES[task]} task reads"
    if task == "longbench_write":
        if not isinstance(row["prompt"], str):
            return f"its 'prompt' is a JSON {type(row['prompt']).__name__}, not text"
        return _bad_length(row)
    return None


def task_file_problem(task: str, rows: list[tuple[int, Any]]) -> str | None:
    """One line on the records (line number, row) of a task file the task cannot read, naming the first such
    line, how many there are, and what the file looks like instead when it is a known kind; None when all read."""
    bad = [(line, row, problem) for line, row in rows if (problem := record_problem(task, row)) is not None]
    if not bad:
        return None
    line, row, problem = bad[0]
    share = f"all {len(rows)} lines" if len(bad) == len(rows) else f"{len(bad)} of {len(rows)} lines"
    text = f"line {line}: {problem} ({share})"
    if isinstance(row, dict):
        kind = looks_like(row)
        shown = ", ".join(list(row)[:8]) + (", ..." if len(row) > 8 else "")
        text += f"; this looks like {kind}" if kind else f"; its fields: {shown}"
    return text
