"""Checkpoints: one msgpack file per save, written atomically, plus a ``latest`` pointer.

A checkpoint holds the parameters, optimizer state, PRNG keys, counters, the environment
state (for exact resume) and the resolved config, so ``puffjax eval`` can rebuild the policy
from the file alone. In a multi-process run, process 0 writes that file (its own environments'
state inside) and every other process p writes its environments' state next to it,
``epoch_XXXXXX.process<p>.msgpack``; ``latest`` moves once all of them are on disk.
"""
from __future__ import annotations

import glob
import json
import os
import re
import tempfile

import jax
import numpy as np
from flax import serialization

from . import parallel

LATEST = "latest"
# Policy kinds under their former names, which stored configs may hold -> their names now.
RENAMED_POLICY_KINDS = {"recurrent": "lstm", "cnn_recurrent": "cnn_lstm"}
_MAIN = re.compile(r"^epoch_\d+\.msgpack$")
_TMP_PREFIX = ".tmp-"


def _tmp_prefix(process: int) -> str:
    return f"{_TMP_PREFIX}{process}-"  # each process cleans only its own leftovers


def save(run_dir: str, epoch: int, payload: dict, config: dict, keep: int = 0) -> str:
    """Write the checkpoint of ``epoch``, ``checkpoints/epoch_XXXXXX.msgpack``, and point
    ``latest`` at it; returns its path. Every process of a run calls it together with its own
    ``payload``: each writes its part (:func:`write`), and once all parts are on disk process 0
    moves ``latest`` and keeps the ``keep`` newest checkpoints (:func:`commit`)."""
    process = jax.process_index()
    path = write(run_dir, epoch, payload, config, process=process)
    parallel.barrier(f"checkpoint {epoch}")
    if process == 0:
        commit(path, keep)
    return path


def write(run_dir: str, epoch: int, payload: dict, config: dict | None = None, process: int = 0) -> str:
    """Write one process's part of the checkpoint of ``epoch`` atomically; returns the path of the
    checkpoint (process 0's file, whichever process writes). ``payload``: a tree of host arrays.
    Temp files that a killed earlier write of this process left behind are removed first."""
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    os.makedirs(ckpt_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(ckpt_dir, _tmp_prefix(process) + "*")):
        os.unlink(stale)
    path = os.path.join(ckpt_dir, f"epoch_{epoch:06d}.msgpack")
    state = serialization.to_state_dict(jax.device_get(payload))
    if process == 0:
        state["config"] = json.dumps(config)
    _atomic_write(process_part(path, process), serialization.msgpack_serialize(state), process)
    return path


def commit(path: str, keep: int = 0) -> None:
    """Point ``latest`` at the checkpoint ``path``; with ``keep`` > 0 delete all but the ``keep``
    newest checkpoints (with their process parts), ``path`` always among those kept."""
    ckpt_dir = os.path.dirname(path)
    _atomic_write(os.path.join(ckpt_dir, LATEST), os.path.basename(path).encode())
    if keep > 0:
        run_dir = os.path.dirname(ckpt_dir)
        for old in sorted(set(checkpoints(run_dir)) - {path})[:-(keep - 1) or None]:
            for part in glob.glob(old[: -len(".msgpack")] + ".process*.msgpack") + [old]:
                os.unlink(part)


def process_part(path: str, process: int) -> str:
    """The file holding process ``process``'s part of the checkpoint ``path`` (0: ``path`` itself)."""
    return path if process == 0 else f"{path[: -len('.msgpack')]}.process{process}.msgpack"


def checkpoints(run_dir: str) -> list[str]:
    """The checkpoint files of a run (process 0's), oldest first."""
    d = os.path.join(run_dir, "checkpoints")
    return sorted(os.path.join(d, f) for f in os.listdir(d) if _MAIN.match(f)) if os.path.isdir(d) else []


def _atomic_write(path: str, data: bytes, process: int = 0) -> None:
    # Write a sibling temp file, flush it to disk, rename it over the target, then flush the
    # directory so the rename itself survives a power cut: a crash at any point leaves either
    # the old file or the new one, never a torn one.
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_tmp_prefix(process))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def resolve(path: str) -> str:
    """A checkpoint file from a file path, a checkpoints/ directory, or a run directory."""
    if os.path.isdir(path):
        for d in (os.path.join(path, "checkpoints"), path):
            pointer = os.path.join(d, LATEST)
            if os.path.exists(pointer):
                with open(pointer) as f:
                    return os.path.join(d, f.read().strip())
        raise FileNotFoundError(f"{path}: no checkpoint found (no checkpoints/{LATEST} file)")
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path


def load_raw(path: str) -> dict:
    """The checkpoint as a nested dict of NumPy arrays, plus ``config`` as a dict."""
    path = resolve(path)
    try:
        with open(path, "rb") as f:
            state = serialization.msgpack_restore(f.read())
        config = json.loads(state.pop("config"))
    except Exception as e:  # msgpack, JSON or a truncated file
        raise ValueError(f"{path}: not a readable puffjax checkpoint ({type(e).__name__}: {e})") from None
    state["config"] = migrate_config(config)
    state["path"] = path
    return state


def migrate_config(config: dict) -> dict:
    """A stored config dict in the current format: a renamed policy kind
    (:data:`RENAMED_POLICY_KINDS`) gets its current name. Returns a new dict; ``config`` is
    left as it is."""
    policy = config.get("policy") if isinstance(config, dict) else None
    if isinstance(policy, dict) and policy.get("kind") in RENAMED_POLICY_KINDS:
        return {**config, "policy": {**policy, "kind": RENAMED_POLICY_KINDS[policy["kind"]]}}
    return config


def load_part(path: str, process: int) -> dict:
    """Process ``process``'s part of the checkpoint file ``path`` (its environment state)."""
    part = process_part(path, process)
    try:
        with open(part, "rb") as f:
            return serialization.msgpack_restore(f.read())
    except FileNotFoundError:
        raise FileNotFoundError(f"{part}: process {process}'s part of checkpoint {path} is missing") from None
    except Exception as e:  # msgpack or a truncated file
        raise ValueError(f"{part}: not a readable puffjax checkpoint part ({type(e).__name__}: {e})") from None


def load_config_dict(path: str) -> tuple[dict, str]:
    """The config stored in a checkpoint (file, checkpoints/ dir or run dir), and the file's path."""
    state = load_raw(path)
    return state["config"], state["path"]


def restore_into(target, state_dict, what: str, path: str):
    """Fill the pytree ``target`` from ``state_dict``; shape mismatches name the offending leaf."""
    restored = serialization.from_state_dict(target, state_dict)
    flat_t = jax.tree_util.tree_flatten_with_path(target)[0]
    flat_r = jax.tree.leaves(restored)
    for (kp, t), r in zip(flat_t, flat_r):
        if np.shape(t) != np.shape(r):
            raise ValueError(
                f"{path}: {what}{jax.tree_util.keystr(kp)} has shape {np.shape(r)} in the checkpoint "
                f"but {np.shape(t)} here: the checkpoint is from a different environment or policy")
    return jax.tree.map(lambda t, r: np.asarray(r, dtype=np.asarray(t).dtype), target, restored)
