"""False positives of the injection screen (and what sanitising changes) on texts nobody wrote to attack.

Every string in every JSONL row of the given files or folders is treated as if a policy had written
it: reference answers, prompts, the WritingBench material quoted in prompts, criteria, contexts. An
ordinary text the screen flags would be scored as a loss under `injection: penalize`, so the
screen's hits here must be 0, or each one explained. The sanitiser's changes are counted too: they
do not cost a reward, but they change what the judge reads.

    PYTHONPATH=src python benchmarks/screen_false_positives.py            # the defaults below
    PYTHONPATH=src python benchmarks/screen_false_positives.py FILE_OR_DIR ... [--show-changes N]

Defaults: ../shared/data (the public benchmark files), the shipped demo samples and examples/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from writing_rl.judge.sanitize import sanitize
from writing_rl.judge.screen import screen

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = [ROOT.parent / "shared" / "data", ROOT / "src" / "writing_rl" / "assets", ROOT / "examples"]


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(field path, text) for every string leaf of a JSON value."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from strings(v, f"{path}[{i}]")


def jsonl_files(targets: list[Path]) -> list[Path]:
    out: list[Path] = []
    for t in targets:
        out += sorted(t.rglob("*.jsonl")) if t.is_dir() else [t]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", type=Path, help="JSONL files or folders (default: see the docstring)")
    parser.add_argument("--show-changes", type=int, default=5, help="print this many texts the sanitiser changes")
    args = parser.parse_args(argv)
    files = jsonl_files(args.targets or [p for p in DEFAULTS if p.exists()])
    started = time.perf_counter()
    total = flagged = changed = chars = 0
    shown = 0
    print(f"{'file':<60} {'texts':>6} {'screen hits':>11} {'sanitised':>9}")
    for path in files:
        n = hits = edits = 0
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            for field, text in strings(json.loads(line)):
                n += 1
                chars += len(text)
                found = screen(text)
                if found is not None:
                    hits += 1
                    print(f"  HIT {path.name}:{line_no} {field}: {', '.join(found.rules)}: {found.excerpt!r}")
                clean = sanitize(text)
                if clean != text:
                    edits += 1
                    if shown < args.show_changes:
                        shown += 1
                        print(f"  changed {path.name}:{line_no} {field}: {_diff(text, clean)}")
        print(f"{str(path.relative_to(path.anchor)):<60} {n:>6} {hits:>11} {edits:>9}")
        total, flagged, changed = total + n, flagged + hits, changed + edits
    seconds = time.perf_counter() - started
    print(
        f"total: {total} texts ({chars / 1e6:.2f} M characters) in {len(files)} files: "
        f"{flagged} flagged by the screen ({flagged / max(total, 1):.2%}), {changed} changed by sanitising "
        f"({changed / max(total, 1):.2%}); {seconds:.1f} s"
    )
    return 0


def _diff(before: str, after: str) -> str:
    """The first differing stretch, before -> after."""
    i = next((k for k, (a, b) in enumerate(zip(before, after)) if a != b), min(len(before), len(after)))
    return f"{before[max(0, i - 30) : i + 40]!r} -> {after[max(0, i - 30) : i + 40]!r}"


if __name__ == "__main__":
    sys.exit(main())
