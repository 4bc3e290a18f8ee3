"""Python environments stepping in worker processes over shared memory.

``puffjax.envs.from_gymnasium(..., workers=W)`` (and ``from_pettingzoo``) split the
environments into W contiguous blocks, one per worker process. The vector env's buffers
(observations, actions, rewards, terminals, truncations, masks) live in one shared-memory
mapping: the main process writes actions into it and the trainer reads observations out of it,
and each worker reads its rows' actions and writes its rows' results in place, with the very
code of the serial loop (:class:`puffjax.envs.env_block.EnvBlock`). A step is one byte to
each worker and one byte back.

Processes are started with ``spawn`` (never ``fork``: the parent runs JAX's threads), so the
env factory is sent with cloudpickle and a script that makes workers needs the usual
``if __name__ == "__main__":`` guard. Failure handling:

* an env that raises in a worker: :class:`puffjax.envs.EnvError` naming the environment index,
  with the worker's traceback in the message;
* a worker that dies (killed, segfault, ``os._exit``): :class:`WorkerDiedError` naming it and
  its exit code, as soon as the main process waits on it (no hang);
* a worker that does not answer a reset or step within ``step_timeout`` seconds (0: no limit):
  :class:`puffjax.envs.StepTimeoutError` naming it and its environments;
* either way, and on ``close()`` or garbage collection, every worker is stopped and joined.

Workers ignore SIGINT: Ctrl-C is the main process's to handle. A KeyboardInterrupt while the
workers step waits for them to finish that step (they do not see the signal), so the pool
stays usable and its state can still be saved. Workers are killed as soon as the main process
is gone, however it ended (:func:`puffjax.lifeline.die_with_parent`).

The shared memory is an anonymous file (``memfd_create``; elsewhere a temporary file removed
at once) that the workers receive as a file descriptor: it has no name, so nothing is left in
``/dev/shm`` whenever and however the processes end.
"""
from __future__ import annotations

import mmap
import os
import pickle
import signal
import tempfile
import time
import traceback
import weakref
from multiprocessing import connection, get_context, reduction

import numpy as np

from ..lifeline import die_with_parent
from ._common import EnvError
from .spaces import SpaceError
from .timeout import StepTimeoutError, timeout_message

_ALIGN = 64


class WorkerDiedError(RuntimeError):
    """A worker process of a vector env exited while the env was in use."""


def _anonymous_file() -> int:
    """A file descriptor of a new, empty file that has no name anywhere."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("puffjax-envs", os.MFD_CLOEXEC)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix="puffjax-envs-", dir=shm)
    os.unlink(path)
    return fd


class _Descriptor:
    """A file descriptor handed to a spawned worker (it travels with the process's arguments,
    as a Connection does); in the worker, ``int(...)`` of it is the worker's own copy."""

    def __init__(self, fd: int):
        self.fd = fd

    def __reduce__(self):
        return _Descriptor._rebuild, (reduction.DupFd(self.fd),)

    @staticmethod
    def _rebuild(dup):
        return _Descriptor(dup.detach())

    def __int__(self):
        return self.fd


def _map_buffers(fd: int, specs: dict):
    """NumPy arrays over the shared file ``fd`` (name -> (shape, dtype) in ``specs``), and
    its mapping (the arrays live as long as it does)."""
    offsets, size = {}, 0
    for name, (shape, dtype) in specs.items():
        offsets[name] = size
        size += -(-int(np.prod(shape)) * np.dtype(dtype).itemsize // _ALIGN) * _ALIGN
    size = max(size, _ALIGN)
    if os.fstat(fd).st_size < size:
        os.ftruncate(fd, size)
    mm = mmap.mmap(fd, size)
    arrays = {name: np.frombuffer(mm, np.dtype(dtype), int(np.prod(shape)), offsets[name]).reshape(shape)
              for name, (shape, dtype) in specs.items()}
    return arrays, mm


def _describe(e: BaseException) -> tuple:
    """An error of a worker as (message, env index or None, whether it is a SpaceError)."""
    if isinstance(e, SpaceError):
        return str(e), None, True
    original = e.__cause__ if isinstance(e, EnvError) and e.__cause__ is not None else e
    tb = "".join(traceback.format_exception(type(original), original, original.__traceback__))
    return f"{e}\n\nTraceback in the worker process:\n{tb}", getattr(e, "env_index", None), False


def _worker_main(conn, parent, shared, specs, first, last, driver, env_fn_bytes, obs_space, act_space, agents,
                 name):
    """A worker: build envs first..last-1 over the shared buffers, then answer commands."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    die_with_parent(parent)
    import cloudpickle

    from .env_block import EnvBlock

    block = None
    try:
        fd = int(shared)
        buffers, _mm = _map_buffers(fd, specs)
        os.close(fd)
        block = EnvBlock(driver, cloudpickle.loads(env_fn_bytes), first, last, buffers, obs_space, act_space,
                         agents, name)
        conn.send_bytes(pickle.dumps(("ok", None)))
        while True:
            try:
                msg = conn.recv_bytes()
            except (EOFError, OSError):
                break  # the main process is gone
            try:
                if msg == b"s":
                    block.step()
                    conn.send_bytes(b"k")
                    continue
                command, args = pickle.loads(msg)
                if command == "close":
                    break
                result = getattr(block, command)(*args)
                conn.send_bytes(pickle.dumps(("ok", result)))
            except Exception as e:  # noqa: BLE001 - reported to the main process
                conn.send_bytes(pickle.dumps(("error", *_describe(e))))
    except Exception as e:  # noqa: BLE001 - building the envs failed
        try:
            conn.send_bytes(pickle.dumps(("error", *_describe(e))))
        except OSError:
            pass
    finally:
        if block is not None:
            block.close()


def _stop(processes, conns) -> None:
    """Stop and join every worker (politely, then SIGTERM, then SIGKILL)."""
    for p, c in zip(processes, conns):
        if p.is_alive():
            try:
                c.send_bytes(pickle.dumps(("close", ())))
            except OSError:
                pass
    for p in processes:
        p.join(timeout=2.0)
        if p.is_alive():
            p.terminate()
            p.join(timeout=2.0)
        if p.is_alive():
            p.kill()
            p.join()
    for c in conns:
        c.close()


class WorkerPool:
    """W worker processes, each an :class:`EnvBlock` of consecutive environments, over buffers
    in shared memory (``self.buffers``). Same interface as the serial runner. ``step_timeout``:
    the seconds a reset or step may take (0: no limit)."""

    def __init__(self, driver, env_fn, num_envs: int, workers: int, specs: dict, obs_space, act_space,
                 agents: int, name: str, step_timeout: float = 0.0):
        import cloudpickle

        self.name, self.step_timeout = name, float(step_timeout)
        fd = _anonymous_file()
        try:
            self.buffers, self._mm = _map_buffers(fd, specs)
            ctx = get_context("spawn")
            fn = cloudpickle.dumps(env_fn)
            self.blocks = [(num_envs * k // workers, num_envs * (k + 1) // workers) for k in range(workers)]
            self.processes, self.conns = [], []
            self._pending: set = set()  # workers whose answer to the last command is not read yet
            self._step_messages = {k: b"s" for k in range(workers)}
            self._closer = weakref.finalize(self, _stop, self.processes, self.conns)
            try:
                for k, (first, last) in enumerate(self.blocks):
                    mine, theirs = ctx.Pipe()
                    p = ctx.Process(target=_worker_main, name=f"puffjax-worker-{k}", daemon=True,
                                    args=(theirs, os.getpid(), _Descriptor(fd), specs, first, last, driver, fn,
                                          obs_space, act_space, agents, name))
                    p.start()
                    theirs.close()
                    self.processes.append(p)
                    self.conns.append(mine)
                    self._pending.add(k)
                self._gather()  # every worker built its envs
            except BaseException:
                self.close()
                raise
        finally:
            os.close(fd)  # the mapping (and the workers' copies) keep the memory

    # ---- talking to the workers ----
    def _gather(self, which=None, command: str = "", timeout: float = 0.0) -> list:
        """The answers of workers ``which`` (default: all) to their last command, in that order;
        raises on an error, a death, or no answer within ``timeout`` seconds (0: no limit)."""
        which = list(range(len(self.processes))) if which is None else list(which)
        answers: dict = {}
        pending = set(which)
        deadline = time.monotonic() + timeout if timeout > 0 else None
        while pending:
            waiting = {self.conns[k]: k for k in pending}
            sentinels = {self.processes[k].sentinel: k for k in pending}
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = connection.wait(list(waiting) + list(sentinels), left)
            if not ready:
                self._timed_out(min(pending), command, timeout)
            for k in sorted({waiting.get(r, sentinels.get(r)) for r in ready}):
                conn = self.conns[k]
                if conn.poll():
                    try:
                        answers[k] = conn.recv_bytes()
                        pending.discard(k)
                        self._pending.discard(k)
                        continue
                    except (EOFError, OSError):
                        pass
                self.processes[k].join(timeout=1.0)
                self._died(k)
        out = []
        for k in which:
            msg = answers[k]
            if msg == b"k":
                out.append(None)
                continue
            status, *payload = pickle.loads(msg)
            if status == "error":
                text, index, space_error = payload
                if space_error or index is not None:
                    self.close()
                if space_error:
                    raise SpaceError(text)
                if index is not None:
                    raise EnvError(f"{text.rstrip()}\n(environment {index} ran in worker {k})", index)
                raise RuntimeError(f"{self.name}: worker {k}: {text.rstrip()}")
            out.append(payload[0])
        return out

    def _died(self, k: int):
        first, last = self.blocks[k]
        code = self.processes[k].exitcode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        self.close()
        raise WorkerDiedError(f"{self.name}: worker {k} (environments {first}..{last - 1}) {how}; "
                              f"all workers of this vector env were stopped")

    def _timed_out(self, k: int, command: str, timeout: float):
        first, last = self.blocks[k]
        self.processes[k].kill()  # it may never read the polite request to stop
        self.close()
        raise StepTimeoutError(timeout_message(self.name, f"worker {k} (environments {first}..{last - 1})", command,
                                               timeout, "all workers of this vector env were stopped"))

    def _finish_interrupted(self) -> None:
        """After a KeyboardInterrupt: read the answers still due (the workers finish what they
        were doing; they do not see SIGINT), so the pool can go on or save its state. A worker
        that does not answer within the step timeout (10 s without one) has the pool closed."""
        try:
            self._gather(sorted(self._pending), "its last command", self.step_timeout or 10.0)
        except Exception:  # noqa: BLE001 - the pool is closed; the KeyboardInterrupt goes on
            self.close()

    def _send(self, messages: dict, command: str = "", timeout: float = 0.0) -> list:
        """Send worker k ``messages[k]`` (bytes) and gather their answers."""
        if not self._closer.alive:
            raise RuntimeError(f"{self.name}: this vector environment is closed")
        try:
            for k, msg in messages.items():
                self.conns[k].send_bytes(msg)
                self._pending.add(k)
            return self._gather(messages, command, timeout)
        except KeyboardInterrupt:
            self._finish_interrupted()
            raise
        except BrokenPipeError:
            self.close()
            raise

    def _command(self, command: str, *args, timeout: float = 0.0) -> list:
        msg = pickle.dumps((command, args))
        return self._send({k: msg for k in range(len(self.conns))}, command, timeout)

    # ---- the runner interface ----
    def reset(self, seed):
        self._command("reset", seed, timeout=self.step_timeout)

    def step(self):
        self._send(self._step_messages, "step", self.step_timeout)

    def take_logs(self):
        return self._command("take_log")

    def render(self, i: int):
        k = next(k for k, (first, last) in enumerate(self.blocks) if first <= i < last)
        return self._send({k: pickle.dumps(("render", (i,)))})[0]

    def get_state(self):
        return self._command("get_state")

    def set_state(self, envs, log):
        empty = (dict.fromkeys(log[0], 0.0), 0)  # the log's sums go to worker 0
        self._send({k: pickle.dumps(("set_state", (envs[first:last], log if k == 0 else empty)))
                    for k, (first, last) in enumerate(self.blocks)})

    def close(self):
        self._closer()
