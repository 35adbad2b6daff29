"""Take indexes: which takes of a folder belong to an evaluation, with their category and split.

An index is a CSV file with a header row naming at least ``take`` (the take folder's name under the takes
root), optionally ``category`` and ``split``, or a JSON file holding a list of such objects (or
``{"takes": [...]}``). ``syn2seq eval --index FILE [--split test]`` scores the listed takes (of that split) and
reports every metric per category. A category in the index overrides the take's own ``take.json`` ``category``.

An Ego-Exo4D index (the JSON lines ``syn2seq index-egoexo4d`` writes: :mod:`syn2seq_core.data.egoexo4d_index`,
recognised by its suffix ``.jsonl`` or its header line) is read too: its entries carry their
:class:`~syn2seq_core.data.egoexo4d_index.IndexedTake` (``IndexEntry.egoexo4d``), the takes root is then the
release root, and :func:`load_takes` loads them with ``load_indexed_take`` (the index's exo camera, the true
Aria camera) instead of :func:`~syn2seq_core.data.takes.load_take`. Their category is the entry's scenario
(``parent_task_name``, e.g. "Bike Repair") with runs of whitespace made one space; a scenario that is still not
a valid label (:func:`~syn2seq_core.data.takes.check_category`) is an error naming the index line's take.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import Syn2SeqInputError, require
from ..io.safe_paths import OutsideFolderError, resolve_inside
from .takes import check_category

INDEX_COLUMNS = ("take", "category", "split")


@dataclass(frozen=True)
class IndexEntry:
    """take: the take folder's name under the takes root (Ego-Exo4D: the entry's ``take_name``); category,
    split: None when the index has none; egoexo4d: the Ego-Exo4D entry this one was read from (None for a
    CSV/JSON index), which says how to load the take (:func:`load_takes`)."""

    take: str
    category: str | None = None
    split: str | None = None
    egoexo4d: object | None = field(default=None, compare=False, repr=False)


def _entries_from_rows(rows: list[dict], where: str) -> list[IndexEntry]:
    out, seen = [], set()
    for i, row in enumerate(rows):
        name = f"{where} entry {i + 1}"
        require(isinstance(row, dict), name, "an object with a 'take' name", type(row).__name__)
        unknown = sorted(set(row) - set(INDEX_COLUMNS))
        require(not unknown, name, f"only the fields {list(INDEX_COLUMNS)}", f"unknown {unknown}")
        take = row.get("take")
        require(isinstance(take, str) and take.strip(), f"{name} take", "a take folder name", repr(take))
        require(take not in seen, f"{name} take", "each take once", f"'{take}' again")
        seen.add(take)
        category = row.get("category") or None
        if category is not None:
            category = check_category(category, f"{name} category")
        split = row.get("split") or None
        require(split is None or isinstance(split, str), f"{name} split", "a split name", repr(split))
        out.append(IndexEntry(take.strip(), category, split))
    return out


def _is_egoexo4d(text: str) -> bool:
    """Whether the first non-empty line is the header of an Ego-Exo4D index."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first.lstrip().startswith("{"):
        return False
    from .egoexo4d_index import INDEX_FORMAT

    try:
        head = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(head, dict) and head.get("format") == INDEX_FORMAT


def _egoexo4d_entries(p: Path) -> list[IndexEntry]:
    """The entries of an Ego-Exo4D index (its header checked by ``read_egoexo4d_index``)."""
    from .egoexo4d_index import read_egoexo4d_index

    out, seen = [], set()
    for e in read_egoexo4d_index(p):
        name = f"{p} take {e.take_name!r}"
        require(e.take_name not in seen, name, "each take once", "listed again")
        seen.add(e.take_name)
        category = (" ".join(e.category.split()) if isinstance(e.category, str) else e.category) or None
        if category is not None:
            category = check_category(category, f"{name} category (its scenario)")
        out.append(IndexEntry(e.take_name, category, e.split, e))
    return out


def read_index(path) -> list[IndexEntry]:
    """The entries of an index file (CSV with a header, JSON, or an Ego-Exo4D index: JSON lines); errors name
    the file and the entry."""
    p = Path(path)
    if not p.is_file():
        raise Syn2SeqInputError("--index", "an index file (.csv, .json, or .jsonl from syn2seq index-egoexo4d)",
                                f"no file '{p}'")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise Syn2SeqInputError(str(p), "a UTF-8 text file (CSV, JSON or JSON lines)", "binary data") from None
    if p.suffix.lower() == ".jsonl" or _is_egoexo4d(text):
        entries = _egoexo4d_entries(p)
    elif p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise Syn2SeqInputError(str(p), "valid JSON", f"a parse error ({e})") from None
        if isinstance(data, dict):
            require(set(data) <= {"takes", "format", "version", "source"}, str(p), "a list of takes or "
                    '{"takes": [...]}', f"the keys {sorted(data)}")
            data = data.get("takes")
        require(isinstance(data, list), str(p), "a list of take entries", type(data).__name__)
        entries = _entries_from_rows(data, str(p))
    else:
        reader = csv.DictReader(text.splitlines())
        require(reader.fieldnames is not None and "take" in reader.fieldnames, str(p),
                f"a CSV header with a 'take' column (and optionally {list(INDEX_COLUMNS[1:])})",
                reader.fieldnames)
        entries = _entries_from_rows([{k: v for k, v in row.items() if k} for row in reader], str(p))
    require(entries, str(p), "at least one take", "none")
    return entries


def select(entries: list[IndexEntry], split: str | None) -> list[IndexEntry]:
    """The entries of ``split`` (all when None); an unknown split is an error listing the known ones."""
    if split is None:
        return entries
    chosen = [e for e in entries if e.split == split]
    known = sorted({e.split for e in entries if e.split})
    require(chosen, "--split", f"one of the index's splits {known}", repr(split))
    return chosen


def take_folders(root, entries: list[IndexEntry], index_path) -> list[Path]:
    """The take folder of each entry under ``root`` (inside it, links followed); a missing one is an error.
    An Ego-Exo4D entry's folder is its ``root_dir`` under the release root ``root``."""
    folders = []
    for e in entries:
        rel = e.take if e.egoexo4d is None else e.egoexo4d.root_dir
        folder = resolve_inside(root, rel, owner=f"index '{index_path}'", entry=f"take {e.take!r}")
        if not folder.is_dir():
            hint = None if e.egoexo4d is None else "--takes must be the release root the index was built from"
            raise Syn2SeqInputError(f"index '{index_path}' take {e.take!r}", f"a take folder {rel} under '{root}'",
                                    "nothing there", hint)
        folders.append(folder)
    return folders


def load_takes(root, entries: list[IndexEntry], index_path) -> list:
    """The :class:`~syn2seq_core.data.takes.Take` of each entry: ``load_take`` of its folder under ``root``, or
    for an Ego-Exo4D entry ``load_indexed_take(root, entry)`` with the index's exo camera and its ego camera
    (``calibration``: the true Aria camera, required; ``approximate``: the stand-in). A take that no longer loads
    (damaged after indexing) is an error naming the index file and the take."""
    from .takes import load_take

    folders = take_folders(root, entries, index_path)  # every folder there before any take is read
    out = []
    for e, folder in zip(entries, folders):
        if e.egoexo4d is None:
            out.append(load_take(folder))
            continue
        from .egoexo4d_index import load_indexed_take

        try:
            out.append(load_indexed_take(root, e.egoexo4d, ego_camera=e.egoexo4d.ego_camera))
        except OutsideFolderError:
            raise
        except Syn2SeqInputError as err:
            raise Syn2SeqInputError(f"index '{index_path}' take {e.take!r} ({err.name})", err.expected, err.found,
                                    "Re-run syn2seq index-egoexo4d if the release changed") from None
        except OSError as err:
            raise Syn2SeqInputError(f"index '{index_path}' take {e.take!r}", "a readable take", str(err),
                                    "Re-run syn2seq index-egoexo4d if the release changed") from None
    return out


def load_take_of_index(index_path, root, name: str):
    """The :class:`~syn2seq_core.data.takes.Take` named ``name`` in the index ``index_path`` (its ``take``), under
    ``root`` as :func:`load_takes` loads it (an Ego-Exo4D index: the release root); an unknown name is an error
    listing some of the index's takes."""
    entries = read_index(index_path)
    chosen = [e for e in entries if e.take == name]
    names = [e.take for e in entries]
    require(chosen, "--take", f"a take of the index '{index_path}' ({', '.join(names[:5])}"
            + (", ..." if len(names) > 5 else "") + ")", repr(name))
    return load_takes(Path(root), chosen, index_path)[0]
