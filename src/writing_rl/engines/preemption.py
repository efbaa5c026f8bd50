"""Preemption: SIGTERM (and SIGUSR1, which SLURM can send ahead of time with `--signal=USR1@120`) end a TRL
run at the end of the current optimizer step, with a checkpoint, instead of losing everything since the last
`save_steps` checkpoint.

Schedulers (SLURM, Kubernetes, spot instances) send SIGTERM and wait a grace period before SIGKILL, so the
grace period must cover one step plus one checkpoint save. The step is finished, not abandoned: its
completions were judged and its curriculum decisions made, and the checkpoint then holds exactly what a run
that was never stopped held after that step, so `--resume` continues it unchanged.

- During training, a first signal only sets a flag. Every rank reads the flags of all ranks at the end of each
  step, so all ranks stop at the same step even when only one was signalled.
- A second signal during training, or a signal before the training loop begins (loading, the judge audit),
  raises `Preempted` at once: the cleanup below it runs (the embedded judge server is stopped), and the last
  saved checkpoint is what `--resume` continues.
- A signal after the last step is ignored: the final model is being saved.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from transformers import TrainerCallback

PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
EXIT_PREEMPTED = 75  # EX_TEMPFAIL (sysexits.h): "a temporary failure; retry later" -- requeue and --resume


class Preempted(RuntimeError):
    """Training stopped on a signal; `checkpoint` is the folder `--resume` continues from (None: none saved)."""

    exit_code = EXIT_PREEMPTED

    def __init__(self, message: str, checkpoint: str | None = None):
        super().__init__(message)
        self.checkpoint = checkpoint


class PreemptionCallback(TrainerCallback):
    """Turns a stop signal into `should_save` + `should_training_stop` at the end of the current step."""

    def __init__(self, num_processes: int = 1):
        self.num_processes = num_processes
        self.received: str | None = None  # the name of the first signal
        self.training = False
        self.finished = False
        self.stopped_at: int | None = None  # the step whose checkpoint was saved because of a signal
        self.stopped_by: str | None = None  # that signal (received by this rank or another)

    def handle(self, signum: int, _frame: Any = None) -> None:
        name = signal.Signals(signum).name
        if self.finished:
            return
        if not self.training:
            raise Preempted(f"{name} before training began: nothing was saved")
        if self.received is not None:
            raise Preempted(f"a second {name} during a step: the step was abandoned")
        self.received = name
        print(f"{name} received: finishing this step, then saving a checkpoint and stopping", flush=True)

    def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.training = True
        return control

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.global_step >= state.max_steps:  # the last step: the run ends and saves final/ anyway
            self.finished = True
            return control
        if (name := self.signal_on_any_rank()) is not None:
            self.stopped_at, self.stopped_by = state.global_step, name
            control.should_save = control.should_training_stop = control.should_log = True
        return control

    def on_train_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.finished = True
        return control

    def signal_on_any_rank(self) -> str | None:
        """The signal any rank received. One small collective per step keeps the ranks in step: a rank that
        stopped alone would leave the others waiting for it forever."""
        if self.num_processes == 1:
            return self.received
        from accelerate.utils import gather_object

        return next((name for name in gather_object([self.received]) if name is not None), None)


@contextlib.contextmanager
def stop_signals(callback: PreemptionCallback) -> Iterator[PreemptionCallback]:
    """Route the preemption signals to `callback` while the block runs; the previous handlers come back after.

    Signal handlers can only be set in the main thread; elsewhere (a trainer run from a worker thread) the
    signals keep their handlers and the run is not preemption-safe."""
    if threading.current_thread() is not threading.main_thread():
        yield callback
        return
    previous = {s: signal.signal(s, callback.handle) for s in PREEMPT_SIGNALS}
    try:
        yield callback
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
