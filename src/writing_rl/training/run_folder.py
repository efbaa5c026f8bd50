"""The run-folder policy: which checkpoint a resume continues, whether a run may start in a folder (and the
command that gets the user going when not), putting the folder back to a checkpoint's state, and one training
per folder at a time (`run_lock`).

It reads the folder through `run_layout` only, so a machine without TRL can still inspect a run.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from .. import run_layout as layout
from ..curriculum import CurriculumStore
from ..errors import ConfigError
from ..jsonl import trim_steps
from ..judge.budget import JudgeBudget


class RunFolderBusy(ConfigError):
    """Another process is training in this run folder right now."""


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Held while a process trains in `run_dir`: a second `train` (or ablation) on the same folder stops at once
    instead of both writing checkpoints, the curriculum store and the records. An OS file lock, so a killed
    process leaves none behind. Re-entrant in one process: the ablation holds it around `train`, which takes it
    again."""
    from filelock import FileLock, Timeout

    try:
        path = layout.lock_file(run_dir)
    except ValueError as err:  # a file system root
        raise ConfigError(str(err)) from None
    lock = FileLock(path, is_singleton=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
    except Timeout:
        raise RunFolderBusy(
            f"{run_dir} is being trained by another process right now (it holds {path}): wait for it to end, or "
            "choose another output_dir"
        ) from None
    except OSError as err:  # a read-only parent folder, say: the run could not write its folder either
        raise ConfigError(f"{run_dir}: cannot create the run's lock {path}: {err.strerror or err}") from None
    try:
        yield
    finally:
        lock.release()


def busy_problem(run_dir: Path) -> str | None:
    """Why `run_dir` cannot be trained in now (another process holds its lock), or None; creates nothing."""
    with contextlib.suppress(ValueError):  # a root: `run_lock` says so
        if not layout.lock_file(run_dir).is_file():
            return None
    try:
        with run_lock(run_dir):
            return None
    except RunFolderBusy as err:
        return str(err)


def run_folder_busy(run_dir: Path) -> bool:
    return busy_problem(run_dir) is not None


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint: one killed between TRL's save and our snapshot is skipped."""
    found = [
        (int(m.group(1)), p)
        for p in run_dir.glob("checkpoint-*")
        if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and (p / layout.CURRICULUM_SNAPSHOT).is_file()
    ]
    return max(found)[1] if found else None


def resume_hint(run_dir: Path) -> str:
    if (checkpoint := last_checkpoint(run_dir)) is None:
        return "no checkpoint to resume from: start the run again"
    return f"the last checkpoint is {checkpoint}: continue with `writing-rl train --resume {run_dir}`"


def restore_from_checkpoint(run_dir: Path, checkpoint: Path) -> None:
    """Put the curriculum store back to the state saved with `checkpoint`, forgetting later promotions."""
    snapshot = checkpoint / layout.CURRICULUM_SNAPSHOT
    if not snapshot.is_file():
        raise ConfigError(f"{checkpoint} has no {layout.CURRICULUM_SNAPSHOT}: cannot restore the curriculum exactly")
    with CurriculumStore(run_dir / layout.CURRICULUM_STORE) as store:
        store.load_snapshot(snapshot)
    for name in (layout.METRICS, layout.ROLLOUTS):
        trim_steps(run_dir / name, int(checkpoint.name.split("-")[1]))
    if (checkpoint / layout.JUDGE_SPEND).is_file():
        shutil.copyfile(checkpoint / layout.JUDGE_SPEND, run_dir / layout.JUDGE_SPEND)


def record_budget(run_dir: Path, budget: JudgeBudget) -> None:
    """Write the budget a resume was given into the run's config.yaml, so a later resume keeps it."""
    path = run_dir / layout.CONFIG
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    judge = data.setdefault("judge", {})
    if judge.get("budget") != budget.model_dump(mode="json"):
        judge["budget"] = budget.model_dump(mode="json")
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def is_run_folder(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in (layout.CONFIG, layout.CURRICULUM_STORE)) or any(
        run_dir.glob("checkpoint-*")
    )


def run_folder_problem(
    run_dir: Path, resume: bool, overwrite: bool, start_over: str = "writing-rl train CONFIG --overwrite"
) -> str | None:
    """Why this run cannot start in `run_dir`, with the exact command that gets the user going; None if it can.

    `start_over` is the command that starts the same run again from scratch in the same folder.
    """
    if resume:
        if last_checkpoint(run_dir) is not None:
            return None
        if not is_run_folder(run_dir):
            return f"nothing to resume: {run_dir} is not a run folder"
        return (
            f"nothing to resume: the run in {run_dir} never reached a checkpoint (no checkpoint-* folder); "
            f"start over with `{start_over}`"
        )
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return None
    if not is_run_folder(run_dir):  # e.g. `--output-dir .`: checkpoints would mix with the user's files
        also = " (--overwrite deletes only run folders)" if overwrite else ""
        return (
            f"{run_dir} holds files but no run{also}: choose a new or empty output_dir, "
            f"e.g. --output-dir {run_dir / ('run-' + time.strftime('%Y%m%d-%H%M%S'))}"
        )
    if overwrite:
        return None
    fresh = f"--output-dir {run_dir}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (run_dir / layout.FINAL).is_dir():
        return f"{run_dir} holds a finished run: start over with `{start_over}`, or keep it and use {fresh}"
    if last_checkpoint(run_dir) is not None:
        return (
            f"{run_dir} already holds a run: resume it with `writing-rl train --resume {run_dir}`, start over with "
            f"`{start_over}`, or keep it and use {fresh}"
        )
    return (
        f"{run_dir} holds a run that never reached a checkpoint (nothing to resume): start over with "
        f"`{start_over}`, or keep it and use {fresh}"
    )
