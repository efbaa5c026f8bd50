"""Ride out a judge outage (a vLLM judge restarting, a gateway answering 502) instead of stopping the run.

`max_unknown_steps` stops a run whose judge gives no reward for several steps: right for a dead URL, wrong
for a server that is back in three minutes. So when every call of a step failed on the way to the judge
(transport, timeout or an error status, after the client's own retries) and the judge's address no longer
answers, the step waits for it, probing `/models`, for up to `outage_wait_s`; when it answers again the step
is judged again and the run goes on as if nothing happened. If it does not come back in time the step counts
toward `max_unknown_steps` as before, and later steps do not wait again until the judge has answered once
(a dead URL then stops the run after one wait, not one wait per step).

A server that answers the probe is not down: calls failing against it (a bad request, a wrong model name)
are not an outage, and the step is not repeated.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from ..reasons import Reason

OUTAGE_REASONS = frozenset({Reason.TRANSPORT, Reason.TIMEOUT, Reason.HTTP_STATUS})


class Scored(Protocol):
    """A reward of either kind (`reward.PairReward`, `pointwise.PointReward`), as far as an outage reads it."""

    @property
    def reward(self) -> float | None: ...

    @property
    def missing_reason(self) -> Reason | None: ...

    @property
    def missing_detail(self) -> str | None: ...


R = TypeVar("R", bound=Scored)


def looks_like_outage(results: Sequence[Scored]) -> bool:
    """Every reward missing, and every one because a call did not get through."""
    return bool(results) and all(r.reward is None and r.missing_reason in OUTAGE_REASONS for r in results)


def answers(base_url: str, timeout_s: float = 5.0) -> bool:
    """Whether the server at `base_url` answers `GET /models` with anything below 500 (a 401 is an answer)."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/models", timeout=timeout_s) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as err:
        return err.code < 500
    except (OSError, http.client.HTTPException):  # refused, reset, timed out, garbage
        return False


class OutageWait:
    """Decides, after each judged batch, whether to wait for the judge and judge the batch again."""

    def __init__(
        self,
        base_url: str,
        max_wait_s: float,
        poll_s: float = 5.0,
        probe: Callable[[str], bool] = answers,
        log: Callable[[str], None] = lambda line: print(line, flush=True),
    ):
        self.base_url = base_url
        self.max_wait_s = max_wait_s
        self.poll_s = poll_s
        self.probe = probe
        self.log = log
        self.gave_up = False  # waited in vain; no more waits until the judge answers again
        self.waited_s = 0.0  # in total, over the run: for the metrics

    def after(self, results: list[R], rescore: Callable[[], list[R]]) -> list[R]:
        """`results`, or the batch judged again once the judge is back."""
        if not looks_like_outage(results):
            if any(r.reward is not None for r in results):
                self.gave_up = False
            return results
        if not self.max_wait_s or self.gave_up or self.probe(self.base_url):
            return results
        started = time.monotonic()
        deadline = started + self.max_wait_s
        reason = results[0].missing_detail or results[0].missing_reason
        self.log(
            f"judge at {self.base_url} unreachable (all {len(results)} calls of this step failed: {reason}); "
            f"waiting up to {self.max_wait_s:g}s for it to come back"
        )
        try:
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(self.poll_s, left))
                if not self.probe(self.base_url):
                    continue
                self.log(
                    f"judge at {self.base_url} answers again after {time.monotonic() - started:.0f}s: judging the step again"
                )
                results = rescore()
                if not looks_like_outage(results):
                    return results
            self.log(
                f"judge at {self.base_url} still unreachable after {self.max_wait_s:g}s: this step counts toward "
                "max_unknown_steps"
            )
            self.gave_up = True
            return results
        finally:
            self.waited_s += time.monotonic() - started
