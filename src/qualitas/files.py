"""Atomic file writing that keeps ordinary permissions.

``tempfile.mkstemp`` creates files 0600 whatever the umask, and a rename keeps that mode,
so an atomically written output would be private where ``open(path, "w")`` gives 0644
(umask 022) or 0664 (umask 002). :func:`temp_for` makes the temporary file with the mode a
plain ``open()`` would give: the existing file's mode when it is replaced, else
``0o666 & ~umask``. :func:`atomic_write_text` is the one text writer every output uses
(ground floor: any package may import it).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``);
    elsewhere by setting and restoring it (a brief, process-wide change)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plain_mode(path: str | os.PathLike) -> int:
    """The permission bits ``open(path, "w")`` would leave ``path`` with."""
    try:
        return os.stat(path).st_mode & 0o7777  # replacing a file keeps its mode
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def temp_for(path: str | os.PathLike, suffix: str = ".tmp") -> str:
    """A new, closed temporary file next to ``path`` (same folder, so ``os.replace`` is
    atomic) with :func:`plain_mode` permissions; the caller writes it and renames it."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=suffix, dir=p.parent)
    try:
        os.fchmod(fd, plain_mode(p))
    finally:
        os.close(fd)
    return tmp


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder + rename); the
    parent folder is created. Permissions as a plain ``open()`` would give (:func:`temp_for`)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_for(p)
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_TRUNC), "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
