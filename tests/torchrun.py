"""Two real CPU processes under torchrun (accelerate's own launcher needs MPI for several CPU processes)."""

import os
import subprocess
import sys
from pathlib import Path

from writing_rl.server import free_port


def run_two_ranks(script: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `script args...` as ranks 0 and 1 (gloo) and fail the test with their stderr if either fails."""
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
        + [str(script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result
