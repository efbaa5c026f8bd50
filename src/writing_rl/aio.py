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


async def gather_with_progress(tasks: Iterable[Awaitable[T]], desc: str) -> list[T]:
    tasks = list(tasks)
    bar = tqdm(total=len(tasks), desc=desc, unit="call")

    async def one(t: Awaitable[T]) -> T:
        try:
            return await t
        finally:
            bar.update(1)

    try:
        return list(await asyncio.gather(*(one(t) for t in tasks)))
    finally:
        bar.close()
