"""Checkpoints: one msgpack file per save, written atomically, plus a ``latest`` pointer.

A checkpoint holds the parameters, optimizer state, PRNG keys, counters, the environment
state (for exact resume) and the resolved config, so ``puffjax eval`` can rebuild the policy
from the file alone.
"""
from __future__ import annotations

import json
import os
import tempfile

import jax
import numpy as np
from flax import serialization

LATEST = "latest"


def save(run_dir: str, epoch: int, payload: dict, config: dict) -> str:
    """Write ``checkpoints/epoch_XXXXXX.msgpack`` atomically and point ``latest`` at it."""
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    os.makedirs(ckpt_dir, exist_ok=True)
    path = os.path.join(ckpt_dir, f"epoch_{epoch:06d}.msgpack")
    state = serialization.to_state_dict(jax.device_get(payload))
    state["config"] = json.dumps(config)
    _atomic_write(path, serialization.msgpack_serialize(state))
    _atomic_write(os.path.join(ckpt_dir, LATEST), os.path.basename(path).encode())
    return path


def _atomic_write(path: str, data: bytes) -> None:
    # Write a sibling temp file, flush it to disk, then rename over the target: a crash at any
    # point leaves either the old file or the new one, never a torn one.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
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
    state["config"] = config
    state["path"] = path
    return state


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
