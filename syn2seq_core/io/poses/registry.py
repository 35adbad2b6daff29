"""The registry of pose-file formats and the entry points that consult it.

:data:`FORMATS` maps each format's name to its :class:`PoseFormat`: the reader, how its files are recognised
(``claims`` / ``sniff`` on the start of a file, ``in_folder`` for a folder) and, for ``syn2seq``, the writer. Each
format module registers itself on import (:func:`register`); the package ``__init__`` imports them, and the order
it imports them in is the order of ``KNOWN_FORMATS``. This module imports no format module.
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ...base.errors import Syn2SeqInputError, check_choice, require
from ...geometry.cameras import Cameras
from ..safe_paths import Folder
from .common import CameraTrack, _read_text

_SNIFF_BYTES = 65536


@dataclass(frozen=True)
class Head:
    """The start of a file as the sniffers see it: at most one of ``json``, ``csv_header``, ``rows`` is set.

    json: the parsed file when its text starts with ``{`` (None when it does not parse).
    csv_header: the column names of the first line, when that line holds a comma (and the file is not JSON).
    rows: for other text, the first data lines (at most 3, from the first 200 lines) split on white space;
        comments: the ``#`` lines met before the last of them.
    """

    json: Any = None
    csv_header: frozenset[str] | None = None
    rows: tuple[tuple[str, ...], ...] | None = None
    comments: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoseFormat:
    """One camera-file format.

    name: what ``format=`` takes, and :attr:`CameraTrack.format`.
    read: ``read(path, within, *, <options>) -> CameraTrack``; its keyword arguments are the format's options.
    claims: ``claims(head) -> bool``, for files that name their own format (a format id, a header line): a claim
        wins over every sniffer.
    sniff: ``sniff(head) -> bool``, does the content look like this format. Sniffers are asked in the order of
        ``KNOWN_FORMATS`` and the first that says yes wins.
    in_folder: ``in_folder(folder, within) -> bool``, does this folder (a take, a model folder) hold the format;
        folder_label: what it looks for, for the refusal of a folder that holds no format; folder_rank: where it is
        looked for among the formats (lowest first), the order of a "several formats" refusal.
    explain: ``explain(path) -> (found, hint) | None`` for a file or folder no format accepts: what it is and what
        to do, when this format recognises it (e.g. COLMAP's binary models).
    write: the writer, for the formats we write (``syn2seq``: :func:`~.syn2seq.save_cameras`).
    """

    name: str
    read: Callable[..., CameraTrack]
    claims: Callable[[Head], bool] | None = None
    sniff: Callable[[Head], bool] | None = None
    in_folder: Callable[[Path, Folder], bool] | None = None
    folder_label: str = ""
    folder_rank: int = 0
    explain: Callable[[Path], tuple[str, str] | None] | None = None
    write: Callable[..., Path] | None = None

    @property
    def options(self) -> list[str]:
        """The keyword options of :attr:`read`, in the order of its signature."""
        return [name for name in inspect.signature(self.read).parameters if name not in ("path", "within")]


FORMATS: dict[str, PoseFormat] = {}


def register(fmt: PoseFormat) -> PoseFormat:
    """Add ``fmt`` to :data:`FORMATS` (a format module calls this once, at its end)."""
    if fmt.name in FORMATS:
        raise ValueError(f"pose format {fmt.name!r} is registered twice")
    FORMATS[fmt.name] = fmt
    return fmt


def holds_file(name: str, *relative: str) -> Callable[[Path, Folder], bool]:
    """An ``in_folder`` test: one of the files ``relative`` (looked for in this order) is in the folder and its
    content is detected as the format ``name``."""
    def in_folder(folder: Path, within: Folder) -> bool:
        return any((folder / rel).is_file() and _sniff_file(within.path(folder / rel)) == name for rel in relative)

    return in_folder


# --- public API ----------------------------------------------------------------------------------
def load_cameras(path, format: str = "auto", *, root=None, owner: str | None = None, **options) -> Cameras:
    """Read a camera file (or a COLMAP model / take folder) into :class:`Cameras`.

    ``format`` is one of ``KNOWN_FORMATS`` or ``"auto"`` (detected from the content). ``options`` are the
    format's own (see the docstring of the format's module); an option the format does not take is an error. Times
    and image names: use :func:`load_camera_track`.

    Files the reader finds through ``path`` (the files of a folder, the images a ``transforms.json`` names)
    must resolve, links followed, inside ``root``: by default the folder ``path`` is, or the folder of the
    file ``path``; a take passes its own folder (then ``path`` itself must be inside it too). ``owner``
    names ``root`` in the refusal (:class:`~syn2seq_core.io.safe_paths.OutsideFolderError`).
    """
    return load_camera_track(path, format, root=root, owner=owner, **options).cameras


def load_camera_track(path, format: str = "auto", *, root=None, owner: str | None = None,
                      **options) -> CameraTrack:
    """Like :func:`load_cameras`, but also return the timestamps (seconds) and image names of the file."""
    p = _existing_path(path)
    within = _folder_of(p, root, owner)
    if format == "auto":
        fmt = _detect(p, options, within)
    else:
        fmt = check_choice(format, tuple(FORMATS), "format")
    reader = FORMATS[fmt]
    accepted = reader.options
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise Syn2SeqInputError(f"options for format {fmt!r}", f"only {accepted}", unknown)
    return reader.read(p, within, **options)


def detect_format(path) -> str:
    """The format of a camera file or folder, from its content. Raises if unknown or ambiguous."""
    p = _existing_path(path)
    return _detect(p, {}, _folder_of(p, None, None))


def _existing_path(path) -> Path:
    require(isinstance(path, (str, os.PathLike)), "path", "a file or folder path", type(path).__name__)
    p = Path(path).expanduser()
    require(p.exists(), str(p), "an existing camera file or folder", "nothing at that path")
    return p


def _folder_of(p: Path, root, owner: str | None) -> Folder:
    """The folder the files read through ``p`` must stay in (see :func:`load_cameras`)."""
    if root is None:
        folder = p if p.is_dir() else p.parent
        return Folder(folder, owner or f"camera {'folder' if p.is_dir() else 'file'} '{p}'")
    within = Folder(Path(root), owner or f"folder '{root}'")
    within.path(p)
    return within


# --- format detection ----------------------------------------------------------------------------
def _read_head(p: Path) -> Head | None:
    """The start of ``p`` for the sniffers; None when it cannot be read or is binary."""
    try:
        with open(p, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return None
    if b"\x00" in head:
        return None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(_read_text(p))
        except (json.JSONDecodeError, Syn2SeqInputError):
            data = None
        return Head(json=data)
    lines = text.splitlines()
    first = lines[0] if lines else ""
    if "," in first:
        return Head(csv_header=frozenset(c.strip() for c in first.split(",")))
    rows, comments = [], []
    for raw in lines[:200]:
        s = raw.strip()
        if s.startswith("#"):
            comments.append(s)
        elif s:
            rows.append(tuple(s.split()))
        if len(rows) >= 3:
            break
    return Head(rows=tuple(rows), comments=tuple(comments))


def _sniff_file(p: Path) -> str | None:
    """The format whose content ``p`` looks like: a claim first, then the first sniffer that says yes."""
    head = _read_head(p)
    if head is None:
        return None
    for fmt in FORMATS.values():
        if fmt.claims is not None and fmt.claims(head):
            return fmt.name
    for fmt in FORMATS.values():
        if fmt.sniff is not None and fmt.sniff(head):
            return fmt.name
    return None


def _folder_formats() -> list[PoseFormat]:
    """The formats a folder can hold, in the order they are looked for."""
    return sorted((fmt for fmt in FORMATS.values() if fmt.in_folder is not None), key=lambda fmt: fmt.folder_rank)


def _detect(p: Path, options: dict, within: Folder) -> str:
    if p.is_dir():
        candidates = [fmt.name for fmt in _folder_formats() if fmt.in_folder(p, within)]
    else:
        sniffed = _sniff_file(p)
        candidates = [] if sniffed is None else [sniffed]
    if len(candidates) > 1 and options:
        # Let the options decide, e.g. a take folder with camera=... (exo) or timestamps_us=... (aria).
        fitting = [f for f in candidates if set(options) <= set(FORMATS[f].options)]
        if fitting:
            candidates = fitting
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise Syn2SeqInputError(str(p), "a folder holding cameras in one format", f"several: {candidates}",
                                "Pass format=... (or the path of the file itself)")
    hint = None
    if p.is_dir():
        found = f"a folder with none of {', '.join(fmt.folder_label for fmt in _folder_formats())}"
    else:
        with open(p, "rb") as f:
            head = f.read(200)
        if b"\x00" in head:
            found = "binary content"
        else:
            first = head.decode("utf-8", errors="replace").splitlines()[0] if head.strip() else ""
            found = f"unrecognised content starting {first[:60]!r}" if first else "an empty file"
    for fmt in FORMATS.values():  # a format that recognises what it cannot read says what to do
        said = fmt.explain(p) if fmt.explain is not None else None
        if said is not None:
            found, hint = said
            break
    raise Syn2SeqInputError(str(p), f"a camera file or folder in one of the known formats {list(FORMATS)}",
                            found, hint or "Pass format=... if the file is in a known format")
