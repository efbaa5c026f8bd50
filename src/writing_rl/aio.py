"""Async plumbing shared by the judge, generators and evaluation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code on one long-lived background event loop.

    Sync callers (an RL engine calling a reward function each step) reuse the same loop, so HTTP
    connections and semaphores stay bound to it; it also works when the caller already runs a loop.
    """
    return asyncio.run_coroutine_threadsafe(coro, _background_loop()).result()


_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_LOCK = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP.is_closed():
            _LOOP = asyncio.new_event_loop()
            threading.Thread(target=_LOOP.run_forever, name="writing-rl-async", daemon=True).start()
        return _LOOP


async def _awaited(aw: Awaitable[T]) -> T:
    return await aw


async def gather_all(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Their results in order, run concurrently in one `asyncio.TaskGroup`: when one raises, the others are
    cancelled instead of left running, and its exception is raised (alone, not in an ExceptionGroup, when it
    is the only one). Per-item failures are for the items to turn into results (a judge's unknown verdict):
    what escapes one is a crash of the batch."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(aw if asyncio.iscoroutine(aw) else _awaited(aw)) for aw in aws]
    except BaseExceptionGroup as failed:
        if len(failed.exceptions) == 1:
            raise failed.exceptions[0] from None
        raise
    return [t.result() for t in tasks]


async def gather_with_progress(tasks: Iterable[Awaitable[T]], desc: str) -> list[T]:
    """`gather_all` with a progress bar."""
    tasks = list(tasks)
    bar = tqdm(total=len(tasks), desc=desc, unit="call")

    async def one(t: Awaitable[T]) -> T:
        try:
            return await t
        finally:
            bar.update(1)

    try:
        return await gather_all(one(t) for t in tasks)
    finally:
        bar.close()
