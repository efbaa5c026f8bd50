"""benchmarks/step_overhead.py runs both arms to the end and prints one row per arm (no timing asserted)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytestmark = pytest.mark.train

ROOT = Path(__file__).resolve().parents[1]


def test_step_overhead_benchmark_times_the_steps_of_both_arms():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    tiny = ["--tiny-hidden", "16", "--batch", "4", "--generations", "2", "--completion-tokens", "4"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "step_overhead.py"), "--steps", "2", *tiny],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| ")}
    assert rows["trl"].split("|")[2].strip() == "1"  # two steps, the first one warm-up
    assert rows["ours"].split("|")[2].strip() == "1"
    assert "ours vs trl" in rows
    assert "load average at start" in done.stdout
