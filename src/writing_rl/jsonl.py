"""JSONL files: read rows line by line with one-line errors for bad bytes or bad JSON; write all rows so
that readers never see half a file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class LineProblem(ValueError):
    """Why one line could not be read: not UTF-8 text, binary data, or not JSON."""


class JsonlFileError(ValueError):
    """A JSONL file with a line that cannot be read; the message names the file and the line."""

    exit_code = 1  # as `validate` exits for bad lines

    def __init__(self, path: str | Path, line: int, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        super().__init__(f"{path}:{line}: {problem}")


def _decoded(raw: bytes) -> str:
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise LineProblem(f"binary data (a NUL byte at byte {nul + 1} of the line), not UTF-8 text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise LineProblem(
            f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at byte {err.start + 1} of the line): save the file as UTF-8"
        ) from None


def jsonl_rows(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed row) for every non-blank line; a `LineProblem` in place of a row that cannot be
    read. A binary file gives one problem (its first line with a NUL byte) and nothing after it."""
    with Path(path).open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark
                raw = raw[3:]
            try:
                text = _decoded(raw)
            except LineProblem as problem:
                yield line_no, problem
                if "NUL" in str(problem):
                    return
                continue
            if not text.strip():
                continue
            try:
                yield line_no, json.loads(text)
            except json.JSONDecodeError as err:
                yield line_no, LineProblem(f"bad JSON: {err}")


def read_jsonl(path: str | Path) -> list[Any]:
    """Every non-blank line of the file, parsed; `JsonlFileError` names the first line that is not."""
    rows = []
    for line_no, row in jsonl_rows(path):
        if isinstance(row, LineProblem):
            raise JsonlFileError(path, line_no, str(row))
        rows.append(row)
    return rows


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write all rows to a temporary file, then move it in place: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def trim_steps(path: Path, up_to_step: int) -> None:
    """On resume, drop the metric and rollout lines of steps the checkpoint never saw (and half-written lines)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= up_to_step:
                keep.append(line)
        except json.JSONDecodeError:  # a line half-written when the process was killed
            continue
    path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
