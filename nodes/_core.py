"""Import ``syn2seq_core`` from this pack's own folder, lazily.

Inside ComfyUI the pack is loaded as a module named after its path, so the core library that sits next to
``nodes/`` is not importable as ``syn2seq_core`` unless the user also pip-installed the pack. This helper
loads it under its own name from the pack folder the first time a node runs (never at import), without
putting the pack folder on ``sys.path`` (which would shadow ComfyUI's own ``nodes`` and ``tests``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parent.parent
CORE_DIR = PACK_ROOT / "syn2seq_core"


def _load_package() -> None:
    spec = importlib.util.find_spec("syn2seq_core")
    if spec is not None and spec.origin and Path(spec.origin).resolve().parent == CORE_DIR:
        importlib.import_module("syn2seq_core")  # an editable install of this very pack
        return
    init = CORE_DIR / "__init__.py"
    spec = importlib.util.spec_from_file_location("syn2seq_core", init, submodule_search_locations=[str(CORE_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["syn2seq_core"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop("syn2seq_core", None)
        raise


def core(module: str = ""):
    """``syn2seq_core`` or one of its submodules, e.g. ``core("geometry")``."""
    if "syn2seq_core" not in sys.modules:
        _load_package()
    return importlib.import_module("syn2seq_core" + (f".{module}" if module else ""))


def input_error(name: str, expected: str, found, hint: str | None = None) -> Exception:
    """A ``Syn2SeqInputError`` ("name: expected X, got Y") to raise from node code."""
    return core("base.errors").Syn2SeqInputError(name, expected, found, hint)
