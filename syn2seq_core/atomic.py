"""Atomic file output: write next to the destination under a hidden name, then rename into place.

An interrupted write (error, Ctrl-C, kill) leaves the destination as it was, never half-written.
Temporary files and folders get the permissions a plain ``open``/``mkdir`` would give (umask applied),
not ``tempfile``'s private 0600/0700, so renamed outputs are readable like any other file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open()`` would give a new file (0o666 minus the umask)."""
    return 0o666 & ~_umask()


def temp_file_near(path, suffix: str | None = None) -> Path:
    """A new hidden empty file in ``path``'s folder (created if needed); rename it onto ``path`` when done."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.stem}.", suffix=f".partial{suffix or p.suffix}")
    os.close(fd)
    os.chmod(tmp, default_file_mode())
    return Path(tmp)


def temp_dir_near(path, tag: str = "partial") -> Path:
    """A new hidden folder next to ``path`` (for building a folder that is then renamed into place)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=p.parent, prefix=f".{p.name}.{tag}-"))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, fsynced before the rename."""
    target = Path(path)
    tmp = temp_file_near(target, ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


@contextlib.contextmanager
def building_dir(dest):
    """Build a folder that replaces ``dest`` only when the ``with`` block completes.

    Yields a hidden folder next to ``dest`` to fill. On success an existing ``dest`` is swapped out and
    removed; on any error (Ctrl-C included) the partial folder is removed and ``dest`` is left as it was.
    """
    import shutil

    dest = Path(dest)
    tmp = temp_dir_near(dest, "partial")
    backup = None
    try:
        yield tmp
        if dest.exists():
            backup = temp_dir_near(dest, "old")
            os.rmdir(backup)
            os.rename(dest, backup)
        os.rename(tmp, dest)
    except BaseException:
        if backup is not None and not dest.exists():
            with contextlib.suppress(OSError):
                os.rename(backup, dest)  # put the earlier folder back
            backup = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
