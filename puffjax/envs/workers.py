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
* either way, and on ``close()``, Ctrl-C (KeyboardInterrupt) or garbage collection, every
  worker is stopped and joined. Workers ignore SIGINT (the main process handles Ctrl-C) and
  exit by themselves when the main process disappears (their pipe closes).
"""
from __future__ import annotations

import mmap
import os
import pickle
import signal
import tempfile
import traceback
import weakref
from multiprocessing import connection, get_context

import numpy as np

from ._common import EnvError
from .spaces import SpaceError

_ALIGN = 64


class WorkerDiedError(RuntimeError):
    """A worker process of a vector env exited while the env was in use."""


def _map_buffers(path: str, specs: dict):
    """NumPy arrays over the shared file ``path`` (name -> (shape, dtype) in ``specs``)."""
    offsets, size = {}, 0
    for name, (shape, dtype) in specs.items():
        offsets[name] = size
        size += -(-int(np.prod(shape)) * np.dtype(dtype).itemsize // _ALIGN) * _ALIGN
    size = max(size, _ALIGN)
    with open(path, "r+b") as f:
        if os.fstat(f.fileno()).st_size < size:
            f.truncate(size)
        mm = mmap.mmap(f.fileno(), size)
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


def _worker_main(conn, path, specs, first, last, driver, env_fn_bytes, obs_space, act_space, agents, name):
    """A worker: build envs first..last-1 over the shared buffers, then answer commands."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    import cloudpickle

    from .env_block import EnvBlock

    block = None
    try:
        buffers, _mm = _map_buffers(path, specs)
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


def _stop(processes, conns, path) -> None:
    """Stop and join every worker (politely, then SIGTERM, then SIGKILL), remove the file."""
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
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class WorkerPool:
    """W worker processes, each an :class:`EnvBlock` of consecutive environments, over buffers
    in shared memory (``self.buffers``). Same interface as the serial runner."""

    def __init__(self, driver, env_fn, num_envs: int, workers: int, specs: dict, obs_space, act_space,
                 agents: int, name: str):
        import cloudpickle

        self.name = name
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, self._path = tempfile.mkstemp(prefix="puffjax-envs-", dir=shm)
        os.close(fd)
        self.buffers, self._mm = _map_buffers(self._path, specs)
        ctx = get_context("spawn")
        fn = cloudpickle.dumps(env_fn)
        self.blocks = [(num_envs * k // workers, num_envs * (k + 1) // workers) for k in range(workers)]
        self.processes, self.conns = [], []
        self._step_messages = {k: b"s" for k in range(workers)}
        self._closer = weakref.finalize(self, _stop, self.processes, self.conns, self._path)
        try:
            for k, (first, last) in enumerate(self.blocks):
                mine, theirs = ctx.Pipe()
                p = ctx.Process(target=_worker_main, name=f"puffjax-worker-{k}", daemon=True,
                                args=(theirs, self._path, specs, first, last, driver, fn, obs_space, act_space,
                                      agents, name))
                p.start()
                theirs.close()
                self.processes.append(p)
                self.conns.append(mine)
            self._gather()  # every worker built its envs
        except BaseException:
            self.close()
            raise
        os.unlink(self._path)  # the mapping stays; nothing is left behind if this process dies

    # ---- talking to the workers ----
    def _gather(self, which=None) -> list:
        """The answers of workers ``which`` (default: all) to their last command, in that order;
        raises on an error or a death."""
        which = list(range(len(self.processes))) if which is None else list(which)
        answers: dict = {}
        pending = set(which)
        while pending:
            waiting = {self.conns[k]: k for k in pending}
            sentinels = {self.processes[k].sentinel: k for k in pending}
            ready = connection.wait(list(waiting) + list(sentinels))
            for k in sorted({waiting.get(r, sentinels.get(r)) for r in ready}):
                conn = self.conns[k]
                if conn.poll():
                    try:
                        answers[k] = conn.recv_bytes()
                        pending.discard(k)
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

    def _send(self, messages: dict) -> list:
        """Send worker k ``messages[k]`` (bytes) and gather their answers."""
        if not self._closer.alive:
            raise RuntimeError(f"{self.name}: this vector environment is closed")
        try:
            for k, msg in messages.items():
                self.conns[k].send_bytes(msg)
            return self._gather(messages)
        except (KeyboardInterrupt, BrokenPipeError):
            self.close()
            raise

    def _command(self, command: str, *args) -> list:
        msg = pickle.dumps((command, args))
        return self._send({k: msg for k in range(len(self.conns))})

    # ---- the runner interface ----
    def reset(self, seed):
        self._command("reset", seed)

    def step(self):
        self._send(self._step_messages)

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
