"""Child processes that end when their parent does.

:func:`die_with_parent` is called first thing in a child process (an env worker, a sweep
worker) with the pid of the process that started it. From then on the child is killed
(SIGKILL) as soon as that parent is gone, however the parent ended (``kill -9`` included):

* on Linux by the kernel, through ``prctl(PR_SET_PDEATHSIG, SIGKILL)``; the kernel sends it when
  the *thread* that started the child exits, so start children from a thread that lives as long
  as they should;
* everywhere by a daemon thread that checks every ``interval`` seconds whether the child's
  parent is still ``parent_pid`` (a child whose parent died is re-parented).

A parent that died before the call is noticed by the call itself, which then kills the child.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _watch(parent_pid: int, interval: float) -> None:
    stop = threading.Event()
    while not stop.wait(interval):
        if os.getppid() != parent_pid:
            _kill_self()


def watch_parent(parent_pid: int, interval: float = 1.0) -> None:
    """The portable half of :func:`die_with_parent`: a daemon thread that kills this process
    once its parent is no longer ``parent_pid`` (checked now and every ``interval`` seconds)."""
    if os.getppid() != parent_pid:
        _kill_self()
    threading.Thread(target=_watch, args=(parent_pid, interval), name="puffjax-parent-watch", daemon=True).start()


def die_with_parent(parent_pid: int, interval: float = 1.0) -> None:
    """Have this process killed when its parent ``parent_pid`` is gone (see the module docstring)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    watch_parent(parent_pid, interval)  # also notices a parent that died before the line above
