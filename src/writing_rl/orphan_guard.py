"""`python -m writing_rl.orphan_guard PARENT_PID MODULE ARGS...`: run MODULE as `python -m` would, and stop it
when the process that started it is gone.

The embedded judge server runs in a session of its own (so a Ctrl-C meant for training does not kill it
half-way through a reply), which also means nothing stops it when training is killed outright (SIGKILL by a
scheduler after its grace period, the OOM killer): it would keep its port and CPU until someone finds it. A
thread here watches the parent and sends this process SIGTERM when it changes; polling `getppid` works on
Linux and macOS alike, unlike `PR_SET_PDEATHSIG`, which is Linux-only and tied to the thread that forked.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time

POLL_S = 1.0


def watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    parent, module, *args = sys.argv[1:]
    threading.Thread(target=watch, args=(int(parent),), name="orphan-guard", daemon=True).start()
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
