"""Write the shipped workflows, and refresh the node-definition snapshot from a real ComfyUI.

    python -m tests.nodes.make_workflows              # workflows/NAME.json + NAME_api.json from graphs.py
    python -m tests.nodes.make_workflows --snapshot   # first re-read /object_info (needs COMFYUI_PATH)

The snapshot (``tests/nodes/object_info_snapshot.json``) holds the real ``/object_info`` entries of every
Syn2Seq node and of each ComfyUI core node the workflows use, so the workflow checks run without ComfyUI;
``test_comfyui_server.py`` compares it with the live server whenever one is available.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

from . import graphs
from .comfy import PACK_ROOT, ComfyServer, find_comfyui
from .workflow_format import FRONTEND_ONLY, SNAPSHOT, build, load_snapshot, write_json

WORKFLOW_DIR = PACK_ROOT / "workflows"
PACK_PREFIX = "Syn2Seq"


def used_core_nodes() -> set[str]:
    return {n.type for make in graphs.WORKFLOWS.values() for n in make()
            if not n.type.startswith(PACK_PREFIX) and n.type not in FRONTEND_ONLY}


def comparable(schema: dict, node_type: str) -> dict:
    """A node definition without machine-specific parts (the file lists of dynamic combos)."""
    s = copy.deepcopy(schema)
    for group in ("required", "optional"):
        for name, spec in s.get("input", {}).get(group, {}).items():
            if (node_type, name) in graphs.DYNAMIC_COMBOS:
                if isinstance(spec[0], list):
                    spec[0] = "COMBO"
                    if len(spec) == 1:
                        spec.append({})
                opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else None
                if opts is not None:
                    opts["options"] = []
                    opts["dynamic"] = True
                    opts.pop("default", None)
    return s


def snapshot_from(object_info: dict, version: str) -> dict:
    wanted = sorted(k for k in object_info if k.startswith(PACK_PREFIX)) + sorted(used_core_nodes())
    missing = [k for k in wanted if k not in object_info]
    if missing:
        raise SystemExit(f"/object_info lacks {missing}")
    return {"comfyui_version": version, "nodes": {k: comparable(object_info[k], k) for k in wanted}}


def refresh_snapshot() -> None:
    found = find_comfyui()
    if isinstance(found, str):
        raise SystemExit(found)
    with tempfile.TemporaryDirectory(prefix="syn2seq-snapshot-") as tmp, ComfyServer(found, Path(tmp)) as server:
        info = server.object_info()
        version = server.get("/system_stats").get("system", {}).get("comfyui_version", "?")
    write_json(SNAPSHOT, snapshot_from(info, version))
    print(f"wrote {SNAPSHOT} (ComfyUI {version})")


def write_workflows() -> None:
    schemas = load_snapshot()
    for name, make in graphs.WORKFLOWS.items():
        ui, api = build(make(), schemas, name)
        write_json(WORKFLOW_DIR / f"{name}.json", ui)
        write_json(WORKFLOW_DIR / f"{name}_api.json", api)
        print(f"wrote workflows/{name}.json and workflows/{name}_api.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", action="store_true", help="re-read /object_info from $COMFYUI_PATH first")
    args = parser.parse_args(argv)
    if args.snapshot:
        refresh_snapshot()
    write_workflows()
    return 0


if __name__ == "__main__":
    sys.exit(main())
