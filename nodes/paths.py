"""Where the nodes read files: ComfyUI's input folder, ``models/syn2seq/`` and the pack's bundled assets.

Every path that comes from a node input is resolved and checked to lie inside one of those folders, so a
workflow cannot make the server read an arbitrary file (``../../etc/passwd`` or a symlink out of the
folder are refused with a clear message). The files a take then names must lie inside the take itself
(``syn2seq_core.data.takes.load_take``); both use the core's one check, ``syn2seq_core.io.safe_paths``.
Listings are cheap (no decoding, no torch) because ComfyUI calls ``define_schema`` on every
``/object_info`` request.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import folder_paths

from .. import syn2seq_core
from ..syn2seq_core.base.errors import Syn2SeqInputError
from ..syn2seq_core.io.safe_paths import resolve_inside

MODEL_FOLDER = "syn2seq"
MODEL_EXTENSIONS = {".safetensors"}  # never unpickle: weights are safetensors only
BUNDLED_MODEL = "bundled"
NO_LORA = "none"
BUNDLED_PREFIX = "(bundled) "
ASSETS_DIR = Path(syn2seq_core.__file__).resolve().parent / "assets"
CAMERA_SUFFIXES = (".json", ".txt", ".csv")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")
_MAX_DEPTH = 3  # how deep listings look below the input folder


def register_model_folder() -> None:
    """Register ``models/syn2seq/`` (and any paths the user set for it) with safetensors only."""
    default = os.path.join(folder_paths.models_dir, MODEL_FOLDER)
    folder_paths.add_model_folder_path(MODEL_FOLDER, default, is_default=False)
    paths, extensions = folder_paths.folder_names_and_paths[MODEL_FOLDER]
    folder_paths.folder_names_and_paths[MODEL_FOLDER] = (paths, set(extensions) | MODEL_EXTENSIONS)


def input_dir() -> Path:
    return Path(folder_paths.get_input_directory())


def inside(root: Path, relative: str, what: str) -> Path:
    """``root / relative`` resolved, refused unless it stays inside ``root`` with every link followed.

    The core's one containment check (:func:`syn2seq_core.io.safe_paths.resolve_inside`): absolute names, ``..``
    that climb out and links that lead out are refused, naming where the name leads.
    """
    p = resolve_inside(root, relative, owner="node input", entry=what,
                       hint="Put the files into ComfyUI's input or models folder").resolve()
    if not p.exists():
        raise Syn2SeqInputError(what, f"an existing file or folder inside '{root.resolve()}'", repr(relative),
                                "Press 'Refresh' (R) after adding files")
    return p


def _walk(root: Path):
    """(folder, dirnames, filenames) below ``root`` to ``_MAX_DEPTH`` levels, hidden entries skipped, sorted."""
    if not root.is_dir():
        return
    root_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):  # symlinks out of the folder are refused anyway
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if len(here.parts) - root_depth >= _MAX_DEPTH:
            dirnames[:] = []
        yield here, dirnames, sorted(f for f in filenames if not f.startswith("."))


def _is_take(folder: Path, filenames: list[str]) -> bool:
    # A take has a take.json or an exo/ego video (syn2seq_core.data.takes.is_take, without importing torch).
    names = set(filenames)
    return "take.json" in names or any(f"{v}{s}" in names for v in ("exo", "ego") for s in VIDEO_SUFFIXES)


def _bundled_takes() -> list[str]:
    out = []
    if ASSETS_DIR.is_dir():
        for p in sorted(ASSETS_DIR.iterdir()):
            if p.is_dir() and not p.name.startswith(".") and _is_take(p, os.listdir(p)):
                out.append(BUNDLED_PREFIX + p.name)
    return out


# An Ego-Exo4D take in the take list: "<index file, relative> | <take_name>". The index (syn2seq index-egoexo4d's
# JSON lines, first line {"format": EGOEXO4D_INDEX_FORMAT, ...}) sits in the release root it was built from.
INDEX_TAKE_SEPARATOR = " | "
EGOEXO4D_INDEX_FORMAT = "syn2seq.egoexo4d_index"


def _index_takes(index: Path) -> list[str]:
    """The take names of an Ego-Exo4D index file (plain JSON: listing runs at ComfyUI's start, without torch),
    or [] for any other file."""
    try:
        with open(index, encoding="utf-8") as f:
            if json.loads(f.readline() or "null").get("format") != EGOEXO4D_INDEX_FORMAT:
                return []
            return [json.loads(line)["take_name"] for line in f if line.strip()]
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return []


def list_takes() -> list[str]:
    """Take folders in the input folder (relative, '/'-separated) after the bundled sample takes, then the takes
    of the Ego-Exo4D indexes there (``release/index.jsonl | take_name``)."""
    found, indexed = [], []
    root = input_dir()
    for here, dirnames, filenames in _walk(root):
        if here != root and _is_take(here, filenames):
            found.append(here.relative_to(root).as_posix())
            dirnames[:] = []
            continue
        for f in filenames:
            if f.endswith(".jsonl"):
                rel = (here / f).relative_to(root).as_posix()
                indexed += [f"{rel}{INDEX_TAKE_SEPARATOR}{name}" for name in _index_takes(here / f)]
    return _bundled_takes() + found + indexed


def resolve_take(name: str) -> Path:
    """The take folder of a listed take, or the index file of an Ego-Exo4D one."""
    if isinstance(name, str) and name.startswith(BUNDLED_PREFIX):
        return inside(ASSETS_DIR, name[len(BUNDLED_PREFIX):], "take")
    if isinstance(name, str) and INDEX_TAKE_SEPARATOR in name:
        return inside(input_dir(), name.split(INDEX_TAKE_SEPARATOR, 1)[0], "take index")
    return inside(input_dir(), name, "take")


def load_take(name: str):
    """The core's Take of a listed take: a take folder, or a take of an Ego-Exo4D index (loaded as ``syn2seq
    exo2ego --index`` loads it, the release root being the index's folder)."""
    from ..syn2seq_core.data import index, takes

    path = resolve_take(name)
    if INDEX_TAKE_SEPARATOR not in name or name.startswith(BUNDLED_PREFIX):
        return takes.load_take(path)
    return index.load_take_of_index(path, path.parent, name.split(INDEX_TAKE_SEPARATOR, 1)[1])


def list_camera_files() -> list[str]:
    """Camera files (.json/.txt/.csv) and COLMAP text models in the input folder, after the bundled ones."""
    out = []
    for take in _bundled_takes():
        folder = ASSETS_DIR / take[len(BUNDLED_PREFIX):]
        out += [f"{take}/{f}" for f in sorted(os.listdir(folder)) if "cameras" in f and f.endswith(CAMERA_SUFFIXES)]
    root = input_dir()
    for here, _, filenames in _walk(root):
        rel = here.relative_to(root).as_posix()
        if here != root and {"cameras.txt", "images.txt"} <= set(filenames):
            out.append(rel)  # a COLMAP text model folder
            continue
        for f in filenames:
            if f.lower().endswith(CAMERA_SUFFIXES):
                out.append(f if here == root else f"{rel}/{f}")
    return out


def resolve_camera_file(name: str) -> Path:
    if isinstance(name, str) and name.startswith(BUNDLED_PREFIX):
        return inside(ASSETS_DIR, name[len(BUNDLED_PREFIX):], "cameras file")
    return inside(input_dir(), name, "cameras file")


def list_models() -> list[str]:
    return [BUNDLED_MODEL] + folder_paths.get_filename_list(MODEL_FOLDER)


LPIPS_NAME_PARTS = ("lpips", "alexnet", "vgg16")  # ours, and torchvision's published backbone file names


def list_lpips_weights() -> list[str]:
    return ["none"] + [f for f in folder_paths.get_filename_list(MODEL_FOLDER)
                       if any(part in f.lower() for part in LPIPS_NAME_PARTS)]


def file_fingerprint(resolve, name):
    """What a loader node's ``fingerprint_inputs`` returns for a file input: the file's path, size and mtime
    (ComfyUI reruns the node when the file changes), or the name itself when it names no file."""
    try:
        p = resolve(name)
        st = os.stat(p)
        return (str(p), st.st_size, st.st_mtime_ns)
    except (OSError, ValueError):
        return name


def list_loras() -> list[str]:
    return [NO_LORA] + folder_paths.get_filename_list(MODEL_FOLDER)


def resolve_model_file(name: str, what: str = "model") -> Path:
    """A file of the ``syn2seq`` model folder, checked to lie inside one of its registered paths."""
    full = folder_paths.get_full_path(MODEL_FOLDER, name)
    if full is None:
        raise Syn2SeqInputError(what, f"a file in {folder_paths.get_folder_paths(MODEL_FOLDER)}", repr(name),
                                "Put .safetensors files into ComfyUI/models/syn2seq/ and press 'Refresh' (R)")
    for root in folder_paths.get_folder_paths(MODEL_FOLDER):
        try:
            return inside(Path(root), os.path.relpath(full, root), what)
        except ValueError:
            continue
    raise Syn2SeqInputError(what, "a file inside the syn2seq model folders", repr(name))
