"""Files named by other files stay inside their folder, after following links.

Several inputs are folders that name their own files: a take names its videos and camera files in
``take.json`` (or holds them under default names), a COLMAP model folder holds ``cameras.txt`` and
``images.txt``, a ``transforms.json`` names its images, an Ego-Exo4D take holds its videos and CSVs, an eval
root holds take folders. Such a folder vouches only for what is inside it. Every path read because one of
them named it goes through one check here:

* :func:`resolve_inside` for a *name* read from a manifest (``take.json`` ``exo.cameras``): refused if it is
  absolute, if its ``..`` climb out of the folder, or if it resolves, links followed in every component, to a
  path outside the folder (itself resolved);
* :func:`check_inside` for a path the reader built below the folder (an auto-discovered ``exo.mp4``, a
  COLMAP folder's ``images.txt``): refused if it resolves outside the folder.

A refusal is an :class:`OutsideFolderError` (a :class:`~syn2seq_core.base.errors.Syn2SeqInputError`) that names
the owner (``take 'kitchen'``), the entry (``take.json exo.cameras``) and the path the name resolves to.
Links that stay inside the folder are followed as usual.

:func:`check_not_a_playlist` covers the one file type that names further files without us parsing it: a
text file given as a video, which FFmpeg reads as a playlist or concat script and follows.

Not covered, by design: the folder the caller chose (a take folder that is itself a link is fine; its files
are checked against where it leads), hard links (they are the file), and a link swapped in between the
check and the read (the check guards against what a folder holds, not against a concurrent writer of it).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path, PurePath

from ..base.errors import Syn2SeqInputError

DEFAULT_HINT = "Files a folder names must lie inside it (links are followed): copy the file into the folder"
_SNIFF_BYTES = 4096


class OutsideFolderError(Syn2SeqInputError):
    """A name or path that leads out of the folder it belongs to.

    owner: who names it (``take 'kitchen'``). entry: which name (``take.json exo.cameras``). root: the
    folder, resolved. resolved: where the name leads, links followed. reason: how it leaves.
    """

    def __init__(self, owner: str, entry: str, name: str, root: Path, resolved: Path, reason: str,
                 hint: str | None = None):
        self.owner, self.entry, self.root, self.resolved, self.reason = owner, entry, root, resolved, reason
        super().__init__(f"{owner} {entry}".strip(), f"a path inside '{root}'",
                         f"'{name}' ({reason}), which resolves to '{resolved}'", hint or DEFAULT_HINT)


def _resolve(path: Path) -> tuple[Path, bool]:
    """(``path`` resolved with every link followed, whether a link loop stopped the resolution)."""
    try:
        return path.resolve(strict=True), False
    except RuntimeError:  # Python < 3.13: "Symlink loop from ..."
        return Path(os.path.abspath(path)), True
    except OSError as e:
        if e.errno == errno.ELOOP:
            return Path(os.path.abspath(path)), True
        # Missing (or a dangling link, or a folder we may not list): resolve as far as it goes, which still
        # follows every link it can; whether the file exists is the caller's to report.
        return path.resolve(strict=False), False


def _within(resolved: Path, root: Path) -> bool:
    return resolved == root or root in resolved.parents


def check_inside(root, path, *, owner: str, entry: str, hint: str | None = None) -> Path:
    """``path`` (built below ``root``) unchanged, refused unless it resolves, links followed, inside ``root``."""
    base = Path(root).resolve()
    p = Path(path)
    resolved, loop = _resolve(p)
    if loop:
        raise OutsideFolderError(owner, entry, str(p), base, resolved, "a link loop", hint)
    if not _within(resolved, base):
        raise OutsideFolderError(owner, entry, str(p), base, resolved, "a link leads out of the folder", hint)
    return p


def resolve_inside(root, name, *, owner: str, entry: str, base=None, hint: str | None = None) -> Path:
    """``base / name`` (``base`` defaults to ``root``), refused unless it stays inside ``root``.

    name: a relative name read from a manifest. Refused: a non-string or empty name, a NUL byte, an absolute
    path, ``..`` that climb out of ``root``, a path that resolves (links followed) outside ``root``. Whether
    the file exists is the caller's to check. Returns the joined path, not the resolved one, so that file
    names in messages stay those of the folder.
    """
    where = f"{owner} {entry}".strip()
    if not isinstance(name, (str, os.PathLike)) or not os.fspath(name) or "\x00" in os.fspath(name):
        raise Syn2SeqInputError(where, "a file name relative to the folder", repr(name))
    text = os.fspath(name)
    start = Path(root if base is None else base)
    joined = start / text
    rroot = Path(root).resolve()
    if PurePath(text).is_absolute() or os.path.isabs(text):
        raise OutsideFolderError(owner, entry, text, rroot, _resolve(Path(text))[0], "an absolute path", hint)
    lexical = Path(os.path.normpath(os.path.abspath(joined)))
    if not _within(lexical, Path(os.path.normpath(os.path.abspath(root)))):
        raise OutsideFolderError(owner, entry, text, rroot, _resolve(joined)[0], "'..' leads out of the folder", hint)
    resolved, loop = _resolve(joined)
    if loop:
        raise OutsideFolderError(owner, entry, text, rroot, resolved, "a link loop", hint)
    if not _within(resolved, rroot):
        raise OutsideFolderError(owner, entry, text, rroot, resolved, "a link leads out of the folder", hint)
    return joined


@dataclass(frozen=True)
class Folder:
    """A folder whose files a reader may open, and who owns it (for messages): ``Folder(take, "take 'k'")``.

    Readers that are handed a folder pass it down so every file they open below it goes through one check.
    """

    root: Path
    owner: str

    def name(self, name, entry: str, base=None) -> Path:
        """:func:`resolve_inside` for a name read from a file of this folder."""
        return resolve_inside(self.root, name, owner=self.owner, entry=entry, base=base)

    def path(self, path, entry: str | None = None) -> Path:
        """:func:`check_inside` for a path built below this folder (entry: its path relative to the folder)."""
        return check_inside(self.root, path, owner=self.owner, entry=entry or self.relative(path))

    def relative(self, path) -> str:
        try:
            return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(self.root))).as_posix()
        except ValueError:  # another drive (Windows)
            return str(path)


def _is_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:  # text cut in the middle of a character at the end of the sample is text
        return e.reason == "unexpected end of data" and e.start >= len(head) - 3
    return True


def check_not_a_playlist(path, *, owner: str, entry: str) -> Path:
    """``path`` unchanged, refused if it is a text file (a video container is binary).

    FFmpeg picks its demuxer from the content, not the name: an ``exo.mp4`` holding ``ffconcat version 1.0
    / file inner.mp4`` or an ``#EXTM3U`` playlist is opened as a concat script / HLS playlist, and the files
    it names (links out of the take included) are read as the video.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return p  # the video reader reports unreadable files
    if _is_text(head):
        raise Syn2SeqInputError(f"{owner} {entry}".strip(), "a video file (a binary container such as MP4, MOV "
                                "or MKV)", f"a text file '{p}'",
                                "FFmpeg would read it as a playlist or concat script and open the files it names")
    return p
