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
    """A new hidden folder next to ``path`` (for building a folder that is then renamed into place), named
    ``.<name>.<tag>-<pid>-<random>`` so that a later run can tell it from the folder of a live process."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=p.parent, prefix=f".{p.name}.{tag}-{os.getpid()}-"))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(dest: Path, tag: str) -> list[Path]:
    """Hidden ``tag`` folders of ``dest`` left by processes that no longer run (killed mid-write)."""
    out = []
    prefix = f".{dest.name}.{tag}-"
    with contextlib.suppress(OSError):
        for entry in dest.parent.iterdir():
            if not entry.name.startswith(prefix) or not entry.is_dir() or entry.is_symlink():
                continue
            pid = entry.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                out.append(entry)
    return out


def _recover(dest: Path) -> None:
    """Undo what a killed swap left: put a displaced earlier folder back, drop dead partial folders."""
    import shutil

    for old in _leftovers(dest, "old"):
        if not dest.exists():
            with contextlib.suppress(OSError):
                os.rename(old, dest)
                continue
        shutil.rmtree(old, ignore_errors=True)
    for partial in _leftovers(dest, "partial"):
        shutil.rmtree(partial, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    import ctypes
    import errno
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False  # no such call or a file system without it: swap in two renames
    raise OSError(err, os.strerror(err), str(b))


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, fsynced before the rename."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, fsynced before the rename."""
    target = Path(path)
    tmp = temp_file_near(target, ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
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

    Yields a hidden folder next to ``dest`` to fill (made first, so an unwritable destination fails before any
    work). On success it takes the place of ``dest`` in one atomic exchange where the system has one (Linux),
    else in two renames; the earlier folder is then removed. On any error (Ctrl-C included) the partial folder
    is removed and ``dest`` is left as it was. What a killed process left (a partial folder, or an earlier
    folder displaced between the two renames) is cleaned up or put back by the next call.
    """
    import shutil

    dest = Path(dest)
    _recover(dest)
    tmp = temp_dir_near(dest, "partial")
    try:
        yield tmp
        if dest.exists() and _exchange(tmp, dest):
            shutil.rmtree(tmp, ignore_errors=True)  # now the earlier folder
            return
        backup = None
        if dest.exists():
            backup = temp_dir_near(dest, "old")
            os.rmdir(backup)
            os.rename(dest, backup)
        try:
            os.rename(tmp, dest)
        except BaseException:
            if backup is not None:
                os.rename(backup, dest)  # put the earlier folder back
            raise
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# The files a result set of exo2ego / ego2exo / demo / eval --write-videos holds: a folder with nothing else
# is an earlier result, which a new run may replace as a whole.
RESULT_FILES = frozenset({"ego_generated.mp4", "exo_generated.mp4", "ego_mean.mp4", "exo_mean.mp4",
                          "side_by_side.mp4", "metrics.json"})


def check_result_dir(dest, name: str = "--out") -> Path:
    """Refuse an output folder that a result set cannot replace (a file, or a folder holding anything but an
    earlier result set) and one that cannot be written, before any expensive work. Returns the path."""
    from ..base.errors import Syn2SeqInputError

    dest = Path(dest).expanduser()
    if dest.exists() or dest.is_symlink():
        if not dest.is_dir():
            raise Syn2SeqInputError(name, "a folder for the result set", f"'{dest}' is a file")
        foreign = sorted(e.name for e in dest.iterdir() if e.name not in RESULT_FILES)
        if foreign:
            raise Syn2SeqInputError(name, f"a new or empty folder, or an earlier result folder (only "
                                          f"{sorted(RESULT_FILES)})", f"'{dest}' holding other files: {foreign[:5]}",
                                    "The whole folder is replaced by the new result set: choose another --out")
    try:
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(temp_dir_near(dest, "partial"))
    except OSError as e:
        raise Syn2SeqInputError(name, "a folder this user can write", f"'{dest}': {e.strerror}") from None
    return dest


@contextlib.contextmanager
def result_dir(dest, name: str = "--out"):
    """Build a run's whole result set in a hidden folder beside ``dest`` and move it into place at the end
    (:func:`building_dir`), so ``dest`` holds the earlier set or the new one, never a mix. ``dest`` is checked
    first (:func:`check_result_dir`)."""
    with building_dir(check_result_dir(dest, name)) as tmp:
        yield tmp
