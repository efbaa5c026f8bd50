"""Run mypy on src/ and fail on any error that is not in the baseline (`scripts/mypy_baseline.txt`).

    python scripts/typecheck.py            # CI (`make typecheck`): exit 1 on a new error
    python scripts/typecheck.py --update   # after fixing errors: write the smaller baseline

The baseline holds the errors src/ had when type checking entered CI, as `path: message [code]`, without line
numbers, so that code moving within a file does not count as new. Each entry counts once: a second copy of
a known error in the same file is new. Fixed errors leave the baseline stale, which the check reports
so the baseline shrinks over time.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "scripts" / "mypy_baseline.txt"
ERROR = re.compile(r"^(?P<path>[^:]+):\d+(?::\d+)?: error: (?P<rest>.*)$")


def current_errors() -> tuple[Counter[str], str]:
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--no-pretty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if run.returncode not in (0, 1):  # 2: mypy itself failed (bad config, crash)
        sys.exit(f"mypy could not run (exit {run.returncode}):\n{run.stdout}{run.stderr}")
    found = Counter(f"{m['path']}: {m['rest']}" for line in run.stdout.splitlines() if (m := ERROR.match(line)))
    return found, run.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--update", action="store_true", help="write the current errors as the baseline")
    args = ap.parse_args()
    found, report = current_errors()
    if args.update:
        BASELINE.write_text("".join(f"{e}\n" for e in sorted(found.elements())), encoding="utf-8")
        print(f"baseline: {sum(found.values())} errors -> {BASELINE.relative_to(ROOT)}")
        return 0
    known = Counter(line for line in BASELINE.read_text(encoding="utf-8").splitlines() if line.strip())
    new = found - known
    fixed = known - found
    if new:
        print(f"mypy: {sum(new.values())} new type error(s) in src/ (not in {BASELINE.name}):")
        keys = set(new)
        for line in report.splitlines():
            m = ERROR.match(line)
            if m and f"{m['path']}: {m['rest']}" in keys:
                print("  " + line)
        return 1
    note = f"; {sum(fixed.values())} baseline error(s) fixed: run with --update" if fixed else ""
    print(f"mypy: no new type errors ({sum(found.values())} known{note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
