"""The folder where writing-rl keeps what it builds once per machine (converted checkpoints, compiled patterns)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("WRITING_RL_CACHE", Path.home() / ".cache" / "writing-rl"))
