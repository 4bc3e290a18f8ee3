"""Checkpoints: one msgpack file per save, written atomically, plus a ``latest`` pointer.

A checkpoint holds the parameters, optimizer state, PRNG keys, counters, the environment
state (for exact resume) and the resolved config, so ``puffjax eval`` can rebuild the policy
from the file alone. In a multi-process run, process 0 writes that file (its own environments'
state inside) and every other process p writes its environments' state next to it,
``epoch_XXXXXX.process<p>.msgpack``; ``latest`` moves once all of them are on disk.

Reading one is reading data: msgpack maps, numbers, strings and NumPy arrays rebuilt from their
bytes, dtype name and shape (an object dtype is refused), and the config as JSON; nothing in the
file is unpickled, imported or compiled here. ``latest`` may only name a checkpoint file of its
own folder; a run whose ``latest`` is missing, unreadable or names anything else, or whose
checkpoint is damaged, is read from its newest readable checkpoint, with a warning naming what
was skipped (:func:`load_raw`).
"""
from __future__ import annotations

import glob
import json
import os
import re
import warnings

import jax
import numpy as np
from flax import serialization

from . import parallel
from .atomic import write_atomic

LATEST = "latest"
# Policy kinds under their former names, which stored configs may hold -> their names now.
RENAMED_POLICY_KINDS = {"recurrent": "lstm", "cnn_recurrent": "cnn_lstm"}
_MAIN = re.compile(r"epoch_[0-9]+\.msgpack")  # a checkpoint's file name (fullmatch)
_MAX_PROCESSES = 1 << 16
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
    write_atomic(process_part(path, process), serialization.msgpack_serialize(state), _tmp_prefix(process))
    return path


def commit(path: str, keep: int = 0) -> None:
    """Point ``latest`` at the checkpoint ``path``; with ``keep`` > 0 delete all but the ``keep``
    newest checkpoints (with their process parts), ``path`` always among those kept."""
    ckpt_dir = os.path.dirname(path)
    write_atomic(os.path.join(ckpt_dir, LATEST), os.path.basename(path).encode(), _tmp_prefix(0))
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
    return _listing(os.path.join(run_dir, "checkpoints"))


def _listing(folder: str) -> list[str]:
    """The checkpoint files (process 0's) in ``folder``, oldest first."""
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if _MAIN.fullmatch(f))


def _pointer(folder: str) -> tuple[str | None, str | None]:
    """``(the checkpoint file that folder/latest names, None)``, or ``(None, why not)``: ``latest``
    must hold the name of an existing checkpoint file of ``folder`` itself, nothing else."""
    pointer = os.path.join(folder, LATEST)
    try:
        with open(pointer, "rb") as f:
            raw = f.read(4097)
        text = raw.decode("ascii").strip()
    except FileNotFoundError:
        return None, f"{pointer} is missing"
    except (OSError, UnicodeDecodeError) as e:
        return None, f"{pointer} is unreadable ({type(e).__name__}: {e})"
    if len(raw) > 4096 or not _MAIN.fullmatch(text):
        return None, f"{pointer} holds {text[:80]!r}, not the name of a checkpoint file in its folder"
    target = os.path.join(folder, text)
    if not os.path.isfile(target):
        return None, f"{pointer} names {text}, which does not exist"
    return target, None


def _candidates(run: str) -> tuple[list[str], list[str]]:
    """The checkpoint files of a run directory (or of its checkpoints/ folder) in the order a
    resume tries them (the one ``latest`` names, then the others newest first), and a note on
    ``latest`` where it names none."""
    folder = os.path.join(run, "checkpoints")
    folder = folder if os.path.isdir(folder) else run
    target, note = _pointer(folder)
    order = ([target] if target else []) + [f for f in reversed(_listing(folder)) if f != target]
    return order, [note] if note else []


def resolve(path: str) -> str:
    """A checkpoint file from a file path, a checkpoints/ directory, or a run directory (the file
    its ``latest`` names, else its newest checkpoint file)."""
    if os.path.isdir(path):
        order, _ = _candidates(path)
        if not order:
            raise FileNotFoundError(f"{path}: no checkpoint found (no checkpoints/epoch_*.msgpack file)")
        return order[0]
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path


def load_raw(path: str) -> dict:
    """The checkpoint as a nested dict of NumPy arrays, plus ``config`` as a dict and ``path``.

    ``path``: a checkpoint file (read as it is: a damaged one is a ValueError), or a run directory
    or its checkpoints/ folder: the checkpoint ``latest`` names or, where ``latest`` is missing,
    unreadable or invalid or that checkpoint is damaged, the newest one that reads whole (with
    every process part it needs), with one warning naming what was skipped and why."""
    if not os.path.isdir(path):
        return _read(resolve(path))
    order, skipped = _candidates(path)
    if not order:
        raise FileNotFoundError(f"{path}: no checkpoint found (no checkpoints/epoch_*.msgpack file)")
    for candidate in order:
        try:
            state = _read(candidate)
            _check_parts(state)
        except ValueError as e:
            skipped.append(str(e))
            continue
        if skipped:
            warnings.warn(f"{path}: using {state['path']}; skipped: {'; '.join(skipped)}", stacklevel=2)
        return state
    raise ValueError(f"{path}: no readable checkpoint: {'; '.join(skipped)}")


def _read(path: str) -> dict:
    """One checkpoint file as :func:`load_raw` returns it; a ValueError naming the file where it
    is not a readable puffjax checkpoint."""
    try:
        with open(path, "rb") as f:
            state = serialization.msgpack_restore(f.read())
        config = json.loads(state.pop("config"))
        if not isinstance(config, dict):
            raise TypeError(f"the stored config is a {type(config).__name__}, not a table")
    except Exception as e:  # msgpack, JSON, a truncated or foreign file
        raise ValueError(f"{path}: not a readable puffjax checkpoint ({type(e).__name__}: {e})") from None
    state["config"] = migrate_config(config)
    state["path"] = path
    return state


def _check_parts(state: dict) -> None:
    """A ValueError where a checkpoint of several processes lacks one of their parts (a save that
    stopped before ``latest`` moved)."""
    counters = state.get("counters")
    processes = counters.get("processes", 1) if isinstance(counters, dict) else 1
    if not isinstance(processes, (int, np.integer)) or not 1 <= processes <= _MAX_PROCESSES:
        raise ValueError(f"{state['path']}: not a readable puffjax checkpoint (processes = {processes!r})")
    missing = [p for p in range(1, int(processes)) if not os.path.isfile(process_part(state["path"], p))]
    if missing:
        raise ValueError(f"{state['path']}: incomplete (the part of process {missing[0]} is missing)")


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
