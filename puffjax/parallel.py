"""Devices and processes: one 1-D mesh over every device of every process, and the few host-side
steps that cross processes (JAX's own engine: ``jax.distributed`` + ``jax.sharding``).

The trainer is data parallel over the mesh axis ``"data"``: each process steps its own vector
env, each device owns a contiguous block of that process's agents and their rows of the rollout
buffer, and parameters and optimizer state are replicated. One device is the mesh of size 1:
the same code, no special case.

    puffjax.parallel.initialize()           # several processes: before anything else touches JAX
    mesh = puffjax.parallel.make_mesh()     # every local device of every process
"""
from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"


class PeerLostError(RuntimeError):
    """Another process of a multi-process run stopped (crashed, killed or unreachable)."""


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               heartbeat_timeout: int = 30, gloo_nice: int = 19) -> None:
    """Join a multi-process run (``jax.distributed.initialize``). Without arguments JAX detects the
    cluster (SLURM, Open MPI); otherwise give all three: ``coordinator`` ("host:port" of process 0),
    ``num_processes`` and this ``process_id``. A process that stops sending heartbeats for
    ``heartbeat_timeout`` seconds is declared dead and the others stop with an error.

    On CPUs the collectives go over gloo (TCP), and this starts the backend and meets the other
    processes once, then gives gloo's network thread the niceness ``gloo_nice`` (0 leaves it as
    it is; see :func:`quiet_gloo_thread`)."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices only; GPUs use NCCL
    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(given) and not all(given):
        raise ValueError("distributed: give coordinator, num_processes and process_id together, or none of "
                         "them to let JAX detect the cluster (SLURM, Open MPI)")
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"distributed: process_id must be in [0, {num_processes}), got {process_id}")
    if not 0 <= gloo_nice <= 19:
        raise ValueError(f"distributed: gloo_nice must be in [0, 19], got {gloo_nice}")
    jax.distributed.initialize(coordinator, num_processes, process_id, heartbeat_timeout_seconds=heartbeat_timeout)
    before = _threads()  # the backend's threads are those started from here on
    if gloo_nice and jax.process_count() > 1 and jax.default_backend() == "cpu":
        quiet_gloo_thread(before, gloo_nice)


def quiet_gloo_thread(before: set[str], nice: int = 19) -> list[int]:
    """Start the CPU backend's gloo collectives with one barrier and lower the priority of their
    network thread to ``nice``; returns the ids of the threads it changed (Linux; elsewhere none).
    ``before``: this process's threads (:func:`_threads`) before the backend started.

    Gloo's TCP transport reads the network in one thread that loops on ``epoll_wait``; while a
    peer's message waits for a receive this process has not posted yet, that loop spins. With
    the process on one core, the spinning thread takes the core's time slices from the thread
    that would post the receive, and a small all-reduce between two pinned processes takes
    milliseconds (``benchmarks/allreduce.py``). At niceness 19 the loop gives the core up to the
    process's other threads, and still has it whenever they wait (for the network among others).

    The thread is told apart as the one the backend and its first collective start that is seen
    waiting in ``epoll_wait``; it is sampled a few times, since a spinning loop is not always
    inside the call."""
    barrier("puffjax.parallel.initialize")  # starts the gloo device and context
    new, found = _threads() - before, set()
    for _ in range(25):
        found |= {t for t in new if "epoll" in _read(f"/proc/self/task/{t}/wchan")}
        time.sleep(0.002)
    for t in found:
        os.setpriority(os.PRIO_PROCESS, int(t), nice)
    return sorted(int(t) for t in found)


def _threads() -> set[str]:
    """The ids of this process's threads (Linux's /proc; elsewhere none)."""
    try:
        return set(os.listdir("/proc/self/task"))
    except OSError:
        return set()


def _read(path: str) -> str:
    """A /proc file's text, or "" once the thread it describes has ended."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def make_mesh(devices_per_process: int = 0) -> Mesh:
    """A 1-D mesh (axis ``"data"``) over the first ``devices_per_process`` local devices of every
    process (0: all of them), ordered by process, so each process's devices hold one contiguous
    block of the rows."""
    local = jax.local_device_count()
    n = devices_per_process or local
    if not 1 <= n <= local:
        raise ValueError(f"train.devices = {devices_per_process}, but this process has {local} device(s) "
                         f"({jax.default_backend()}); use 0 for all of them")
    by_process: dict[int, list] = {}
    for d in jax.devices():
        by_process.setdefault(d.process_index, []).append(d)
    devices = [d for p in sorted(by_process) for d in sorted(by_process[p], key=lambda d: d.id)[:n]]
    return Mesh(np.array(devices), (AXIS,))


def rows(mesh: Mesh) -> NamedSharding:
    """The sharding of arrays split on their first axis (rows, agents) over the mesh."""
    return NamedSharding(mesh, P(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def per_device(mesh: Mesh, fn):
    """``fn`` (rows -> scalar) jitted to run on each device's rows of a row-sharded array; the
    results stacked by device, sharded the same way, so :func:`to_local` reads this process's
    results without any collective."""
    shard = jax.shard_map(lambda x: jnp.reshape(fn(x), (1,)), mesh=mesh, in_specs=P(AXIS), out_specs=P(AXIS))
    return jax.jit(shard)


def local_devices(mesh: Mesh) -> int:
    """How many of the mesh's devices belong to this process."""
    return sum(d.process_index == jax.process_index() for d in mesh.devices.flat)


def from_local(mesh: Mesh, local, spec=P(AXIS)):
    """A global array from this process's part: its rows (``spec = P("data")``) or, replicated
    (``spec = P()``), the whole value, which every process must hold identically."""
    return jax.make_array_from_process_local_data(NamedSharding(mesh, spec), np.asarray(local))


def row_feed(mesh: Mesh):
    """A function from this process's rows of an array (a host array, split over its devices as
    :func:`from_local` splits them) to an argument for a jitted function that takes it sharded
    on rows over ``mesh``, made by the cheapest route. When this process holds the whole mesh it
    is the host array itself: the jitted call copies it to the devices within its own dispatch,
    far faster than a separate transfer. Otherwise it is the global array, made from one copy to
    each local device by a jitted identity (the same dispatch path).

    The argument may share the host array's memory (JAX's CPU client can take a NumPy array
    without copying it), so the host array must keep its values until the call that reads it has
    finished."""
    sharding = rows(mesh)
    if all(d.process_index == jax.process_index() for d in mesh.devices.flat):
        return np.asarray
    mine = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    copies = [jax.jit(lambda x: x, out_shardings=jax.sharding.SingleDeviceSharding(d)) for d in mine]
    processes = mesh.size // len(mine)  # each holds as many devices, so as many rows

    def feed(local) -> jax.Array:
        local = np.asarray(local)
        n = local.shape[0] // len(mine)
        parts = [copy(local[i * n:(i + 1) * n]) for i, copy in enumerate(copies)]
        return jax.make_array_from_single_device_arrays((local.shape[0] * processes, *local.shape[1:]), sharding, parts)
    return feed


def replicate(mesh: Mesh, tree):
    """Every leaf of ``tree`` replicated over the mesh (the same value on every process)."""
    return jax.tree.map(lambda x: from_local(mesh, x, P()), tree)


def to_local(x) -> np.ndarray:
    """This process's part of a global array as NumPy: the whole array when this process sees all
    of it, else its rows in order (for a replicated array, one copy)."""
    if x.is_fully_addressable:
        return np.asarray(x)
    if x.sharding.is_fully_replicated:
        return np.asarray(x.addressable_data(0))
    shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
    return np.concatenate([np.asarray(s.data) for s in shards])


def device_key(key):
    """Inside ``shard_map``: this device's random key. Device 0 uses ``key`` itself, so a mesh of
    one device draws exactly what an unsharded program (e.g. evaluation) draws; device d > 0
    folds d in, so no two devices share noise."""
    d = jax.lax.axis_index(AXIS)
    return jnp.where(d == 0, key, jax.random.fold_in(key, d))


def process_seed(seed: int) -> int:
    """The environment seed of this process: the run's seed on process 0 (so one process plays
    exactly as a single-process run), a distinct stream derived from it on every other."""
    p = jax.process_index()
    return seed if p == 0 else _derived_seed(seed, p)


def _derived_seed(seed: int, *words: int) -> int:
    """A non-negative 63-bit seed drawn from ``seed`` and ``words`` (NumPy's SeedSequence)."""
    return int(np.random.SeedSequence([seed & ((1 << 63) - 1), *words]).generate_state(1, np.uint64)[0] >> 1)


def step_seed(seed: int, step: int) -> int:
    """A seed for environments started afresh at agent step ``step`` of a run seeded ``seed``
    (e.g. on resuming with another number of processes): a stream of its own, derived from both."""
    return _derived_seed(seed, step, 1)  # three words: never a process's stream


def is_main() -> bool:
    """The process that writes metrics, checkpoints of the replicated state and videos."""
    return jax.process_index() == 0


def exchange_epoch(log: dict, names, record: np.ndarray, live_steps: int) -> tuple[dict, np.ndarray, int]:
    """What the processes share after a rollout, in one collective: the environment logs,
    averaged with each process's episode count as weight; every process's non-finite records
    (:func:`puffjax.rollout.play`), stacked in process order; and the live agent steps, summed.

    ``log``: this process's ``env.log()`` (``{}`` when no episode ended); ``names``: its fields;
    ``record``: this process's records; ``live_steps``: its agents' steps that count. One
    process shares nothing and gets its own values back. The values travel as the raw words of
    float64 numbers, so the sums are exact whatever JAX's default precision."""
    if jax.process_count() == 1:
        return log, record, live_steps
    n = float(log.get("n", 0))
    mine = np.concatenate([[n], [n * float(log.get(k, 0.0)) for k in names], [live_steps],
                           np.asarray(record, np.float64).ravel()]).astype(np.float64)
    words = np.asarray(multihost_utils.process_allgather(mine.view(np.uint32)))
    every = np.ascontiguousarray(words.reshape(jax.process_count(), -1)).view(np.float64)
    total = every[:, :len(names) + 2].sum(axis=0)
    records = every[:, len(names) + 2:].astype(np.int64).reshape(-1, *np.shape(record)[1:])
    merged = {} if total[0] <= 0 else {**{k: float(v / total[0]) for k, v in zip(names, total[1:])},
                                       "n": int(total[0])}
    return merged, records, int(total[-1])


def gather(local: np.ndarray) -> np.ndarray:
    """Every process's ``local`` array stacked along the first axis, on every process."""
    if jax.process_count() == 1:
        return local
    return np.asarray(multihost_utils.process_allgather(local, tiled=True))


def broadcast_text(text: str) -> str:
    """Process 0's ``text`` on every process (e.g. the run directory it chose)."""
    if jax.process_count() == 1:
        return text
    data = np.zeros(1024, np.uint8)
    raw = text.encode()[:1024]
    data[:len(raw)] = np.frombuffer(raw, np.uint8)
    out = np.asarray(multihost_utils.broadcast_one_to_all(data))
    return bytes(out[out > 0].astype(np.uint8)).decode()


def barrier(name: str) -> None:
    """Wait until every process reaches this point (no-op for one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def lost_processes(error: BaseException | None = None) -> list[int]:
    """The processes that stopped, after ``error`` ended an epoch of a multi-process run (empty
    if it cannot tell).

    When ``error`` is a collective that lost its connection to a peer (:func:`lost_link`) and
    the run has two processes, the lost one is the other: named at once. Otherwise it asks the
    coordination service, which answers once the lost ones have missed their heartbeats; JAX
    ends every process when that happens, so that answer can come too late to be reported.

    The service is asked through JAX's distributed client, which has no public accessor
    (hence the upper bound on jax in pyproject.toml). ``multihost_utils.live_devices`` asks the
    same question publicly, but asks it a second time on leaving its block, and by then JAX's
    own abort on a dead peer has ended the process before the error could be reported."""
    everyone = list(range(jax.process_count()))
    if error is not None and lost_link(error) and len(everyone) == 2:
        return [1 - jax.process_index()]
    try:
        from jax._src import distributed as _distributed
        client = _distributed.global_state.client
        live = client.get_live_nodes(everyone) if client is not None else {p: 0 for p in everyone}
        return [p for p in everyone if p not in live]
    except Exception:  # noqa: BLE001 - best effort, only used to word an error
        return []


_LOST_LINK = ("connection closed by peer", "connection reset by peer", "broken pipe")


def lost_link(error: BaseException) -> bool:
    """Whether ``error`` (or an exception it was raised from) is a collective whose connection
    to another process broke (gloo's TCP transport on CPUs)."""
    while error is not None:
        if any(s in str(error).lower() for s in _LOST_LINK):
            return True
        error = error.__cause__ or error.__context__
    return False
