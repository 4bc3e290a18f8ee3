"""The step timeout of Python environments, and the watchdog that enforces it in this process.

A vector env of Python environments stops with :class:`StepTimeoutError` when one reset or
step takes longer than its ``step_timeout`` (seconds; 0: no limit). With worker processes
(:mod:`puffjax.envs.workers`) the main process waits on the workers with that timeout and
kills them when it runs out. Without workers, :class:`Watchdog` runs each call under a timer
thread that, when the time runs out, raises in the thread that made the call:

* in the main thread through SIGALRM, whose handler is swapped in for the length of each call
  (and the previous one put back after it), so an env asleep or blocked in a system call is
  woken too;
* in any other thread as an asynchronous exception, which Python raises at the env's next
  line of Python code.

An env stuck inside C code that never returns to Python cannot be stopped in this process:
run such envs with ``workers``, where the worker is killed.
"""
from __future__ import annotations

import ctypes
import signal
import threading
import time


class StepTimeoutError(RuntimeError):
    """A Python environment took longer than ``step_timeout`` seconds in one reset or step."""


def timeout_message(name: str, where: str, command: str, seconds: float, stopped: str) -> str:
    """The message of a :class:`StepTimeoutError`: which envs, what, how long, what was done."""
    return (f"{name}: {where} did not finish {command} within {seconds:g} s (env.step_timeout); {stopped}. "
            f"Raise env.step_timeout if it is just slow (0 turns the limit off)")


class _Expired(BaseException):
    """Raised into the stepping thread when its time ran out (a BaseException, so the env's
    own ``except Exception`` does not swallow it)."""


class Watchdog:
    """Runs calls into Python envs with a time limit of ``seconds`` each (see the module
    docstring). One timer thread per watchdog, started on the first call, stopped by
    :meth:`close`."""

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self._lock = threading.Lock()
        self._armed = None  # (deadline, thread id, in the main thread) while a call runs
        self._fired = False
        self._closed = threading.Event()
        self._thread = None

    def _run(self) -> None:
        while True:
            with self._lock:
                armed = self._armed
                now = time.monotonic()
                if armed is not None and now >= armed[0]:
                    self._fired, self._armed = True, None
                    _, ident, main = armed
                    if main:
                        signal.pthread_kill(ident, signal.SIGALRM)
                    else:
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(_Expired))
            wait = self.seconds / 4 if armed is None or now >= armed[0] else min(armed[0] - now, self.seconds / 4)
            if self._closed.wait(wait):
                return

    def _on_alarm(self, previous):
        def handler(signum, frame):
            if self._fired:
                raise _Expired
            if callable(previous):  # someone else's alarm
                previous(signum, frame)
        return handler

    def call(self, fn, describe):
        """``fn()``, or :class:`StepTimeoutError` with the message ``describe()`` when it takes
        longer than the limit."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="puffjax-step-watchdog", daemon=True)
            self._thread.start()
        ident = threading.get_ident()
        main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGALRM) if main else None
        fired = False
        try:
            if main:
                signal.signal(signal.SIGALRM, self._on_alarm(previous))
            try:
                with self._lock:
                    self._fired = False
                    self._armed = (time.monotonic() + self.seconds, ident, main)
                result = fn()
            finally:
                with self._lock:
                    self._armed, fired = None, self._fired
                if fired and not main:  # finished late: drop the exception still on its way
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
            if fired:
                raise _Expired
            return result
        except _Expired:
            raise StepTimeoutError(describe()) from None
        finally:
            if main:
                self._restore(previous, fired)

    @staticmethod
    def _restore(previous, fired: bool) -> None:
        """Put the SIGALRM handler from before back; after a timeout, drop a SIGALRM still on its
        way first, so that it cannot meet the default action (exiting)."""
        mask = None
        if fired and hasattr(signal, "sigtimedwait"):
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            signal.sigtimedwait({signal.SIGALRM}, 0)
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def close(self) -> None:
        self._closed.set()
