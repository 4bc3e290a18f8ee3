"""Atomic file replacement: a crash or an error at any point leaves either the old file or the new
one, never a torn one. Used for checkpoints, their ``latest`` pointer and the metrics rewrite."""
from __future__ import annotations

import os
import tempfile


def write_atomic(path: str, data: bytes, prefix: str = ".tmp-") -> None:
    """Replace ``path`` with ``data``: write a sibling temp file named ``prefix...``, flush it to
    disk, rename it over ``path``, then flush the directory so that the rename itself survives a
    power cut. On an error the temp file is removed and ``path`` is left as it was."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix)
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
