"""Take indexes: which takes of a folder belong to an evaluation, with their category and split.

An index is a CSV file with a header row naming at least ``take`` (the take folder's name under the takes
root), optionally ``category`` and ``split``, or a JSON file holding a list of such objects (or
``{"takes": [...]}``). ``syn2seq eval --index FILE [--split test]`` scores the listed takes (of that split) and
reports every metric per category; the Ego-Exo4D indexer writes this format. A category in the index overrides
the take's own ``take.json`` ``category``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import Syn2SeqInputError, require
from ..safe_paths import resolve_inside
from .takes import check_category

INDEX_COLUMNS = ("take", "category", "split")


@dataclass(frozen=True)
class IndexEntry:
    take: str
    category: str | None = None
    split: str | None = None


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


def read_index(path) -> list[IndexEntry]:
    """The entries of an index file (CSV with a header, or JSON); errors name the file and the entry."""
    p = Path(path)
    if not p.is_file():
        raise Syn2SeqInputError("--index", "an index file (.csv or .json)", f"no file '{p}'")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise Syn2SeqInputError(str(p), "a UTF-8 text file (CSV or JSON)", "binary data") from None
    if p.suffix.lower() == ".json":
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
    """The take folder of each entry under ``root`` (inside it, links followed); a missing one is an error."""
    folders = []
    for e in entries:
        folder = resolve_inside(root, e.take, owner=f"index '{index_path}'", entry=f"take {e.take!r}")
        if not folder.is_dir():
            raise Syn2SeqInputError(f"index '{index_path}' take {e.take!r}", f"a take folder under '{root}'",
                                    "nothing there")
        folders.append(folder)
    return folders
