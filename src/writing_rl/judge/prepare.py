"""Sanitising and screening a batch's answers in worker processes, ahead of the judge calls.

Every answer is folded and matched against all sanitiser rules before a judge reads it: about 25 us
per word on one core, so 1,024 answers of 800 words are ~20 s of CPU, which would otherwise run in the
reward's event loop between the calls and set the step time instead of the judge. With
`reward.prepare_workers` > 0 the distinct texts of a batch (policy answers and references) are
sanitised and screened in that many processes first, and their results handed to the event loop's
memos (`Memo.prime`), so the loop only sends requests. Worth it where training ranks have spare cores
(a GPU node); on a laptop the default 0 keeps everything in one process.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor

from .sanitize import sanitize
from .screen import Injection, screen


def _prepare(texts: list[str]) -> list[tuple[str, Injection | None]]:
    return [(sanitize(t), screen(t)) for t in texts]


class Preparer:
    """A pool of `workers` processes (started on first use, spawned: the trainer's threads are not forked)."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    async def prime(self, texts: Iterable[str]) -> None:
        todo = list(dict.fromkeys(t for t in texts if t not in sanitize or t not in screen))
        if len(todo) < 2 * self.workers:  # a few texts are cheaper here than a round trip to the pool
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        loop = asyncio.get_running_loop()
        size = -(-len(todo) // (4 * self.workers))  # a few chunks per worker, so they finish together
        chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
        done = await asyncio.gather(*(loop.run_in_executor(self._pool, _prepare, chunk) for chunk in chunks))
        for chunk, results in zip(chunks, done):
            for text, (clean, injection) in zip(chunk, results):
                sanitize.prime(text, clean)
                sanitize.prime(clean, clean)  # a fixed point: the template sanitises the sanitised text again
                screen.prime(text, injection)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
