"""Sample files for the verl tests."""

from __future__ import annotations

import json
from pathlib import Path


def write_samples(path: Path, samples: list[dict]) -> Path:
    path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples), encoding="utf-8")
    return path
