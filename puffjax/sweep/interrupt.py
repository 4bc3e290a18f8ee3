"""Ctrl-C in a sweep's processes, raised only where it cannot break the study's storage.

A KeyboardInterrupt raised inside SQLAlchemy (Optuna's RDB storage) can leave its connection
pool's lock held, and the next storage call, the one that records the trial as interrupted,
then waits forever. :func:`interrupt_once` installs a SIGINT handler that raises
KeyboardInterrupt at once where the main thread is in any other code, and otherwise keeps it
pending until :func:`check` is called after the storage call returns. The first SIGINT is
the only one: later ones are ignored, so recording the interruption is not cut short. The
caller's handler is restored on exit (SIGINT can be handled only in the main thread; elsewhere
this does nothing).
"""
from __future__ import annotations

import contextlib
import signal
import threading

# Modules in which a raised KeyboardInterrupt could leave a lock or a transaction half done.
_STORAGE = ("optuna", "sqlalchemy", "sqlite3", "psycopg", "psycopg2", "pymysql", "MySQLdb")

_state = {"armed": False, "pending": False}


def _in_storage(frame) -> bool:
    while frame is not None:
        if frame.f_globals.get("__name__", "").partition(".")[0] in _STORAGE:
            return True
        frame = frame.f_back
    return False


def _handler(signum, frame):
    if not _state["armed"]:
        return  # already interrupted: a second Ctrl-C must not cut the recording short
    _state["armed"] = False
    if _in_storage(frame):
        _state["pending"] = True
        return
    raise KeyboardInterrupt


def check() -> None:
    """Raise the KeyboardInterrupt that a SIGINT during a storage call left pending."""
    if _state["pending"]:
        _state["pending"] = False
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupt_once():
    """SIGINT as one KeyboardInterrupt, raised outside storage calls (see the module's doc)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _handler)
    _state.update(armed=True, pending=False)
    try:
        yield
    finally:
        _state.update(armed=False, pending=False)
        signal.signal(signal.SIGINT, previous)
