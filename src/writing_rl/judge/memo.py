"""A least-recently-used memo of a one-argument function that can also be handed results computed elsewhere.

`functools.lru_cache` cannot be filled from outside; the sanitiser and the screen need that, so that
answers sanitised in worker processes (`prepare.py`) are not looked at again by the event loop.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    def __init__(self, fn: Callable[[K], V], maxsize: int):
        self._fn, self._maxsize = fn, maxsize
        self._values: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()  # the reward's event loop and the trainer's thread may both call it
        functools.update_wrapper(self, fn)

    def __call__(self, key: K) -> V:
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = self._fn(key)
        self.prime(key, value)
        return value

    def __contains__(self, key: K) -> bool:
        with self._lock:
            return key in self._values

    def prime(self, key: K, value: V) -> None:
        """Remember `value` as the result for `key` (it must be what the function would return)."""
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self._maxsize:
                self._values.popitem(last=False)

    def cache_clear(self) -> None:
        with self._lock:
            self._values.clear()


def memo(maxsize: int) -> Callable[[Callable[[K], V]], Memo[K, V]]:
    return lambda fn: Memo(fn, maxsize)
