"""Write the shipped workflows, and refresh the node-definition snapshot from a real ComfyUI.

    python -m tests.nodes.make_workflows              # workflows/ from graphs.py, docs/nodes.md
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
from .harness import PACK_ROOT, ComfyServer, find_comfyui
from .workflow_format import FRONTEND_ONLY, SNAPSHOT, build, load_snapshot, write_json

WORKFLOW_DIR = PACK_ROOT / "workflows"
# API twins live one level down: ComfyUI lists every workflows/*.json as a template, and an API-format file
# opened from the template browser fails to load.
API_DIR = WORKFLOW_DIR / "api"
DOCS = PACK_ROOT / "docs" / "nodes.md"
PACK_PREFIX = "Syn2Seq"
DOC_ORDER = ["Syn2SeqLoadTake", "Syn2SeqLoadCameras", "Syn2SeqCameraPath", "Syn2SeqEstimateCameras", "Syn2SeqTransitionPoses", "Syn2SeqPluckerRays",
             "Syn2SeqInterpolate", "Syn2SeqWanFramesToTransition", "Syn2SeqBuildSequence", "Syn2SeqSplitSequence",
             "Syn2SeqLoadModel", "Syn2SeqSampler", "Syn2SeqConditionalMean", "Syn2SeqImageToVideo",
             "Syn2SeqWanCameraEmbedding", "Syn2SeqEvaluate"]


def used_core_nodes() -> set[str]:
    return {n.type for make in graphs.WORKFLOWS.values() for n in make()
            if not n.type.startswith(PACK_PREFIX) and n.type not in FRONTEND_ONLY}


def comparable(schema: dict, node_type: str) -> dict:
    """A node definition without machine-specific parts (the file lists of dynamic combos, and the module
    path, which names the folder the pack was installed into)."""
    s = copy.deepcopy(schema)
    s.pop("python_module", None)
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
        write_json(API_DIR / f"{name}_api.json", api)
        print(f"wrote workflows/{name}.json and workflows/api/{name}_api.json")


def _input_doc(spec) -> str:
    o = spec.options
    if spec.type == "COMBO":
        if o.get("dynamic"):
            kind = "choice of files"
        else:
            kind = "one of " + ", ".join(f"`{v}`" for v in o.get("options", []))
    else:
        kind = spec.type
    bits = [kind]
    if "default" in o and not o.get("dynamic"):
        bits.append(f"default `{o['default']}`")
    if "min" in o and "max" in o and spec.type in ("INT", "FLOAT"):
        bits.append(f"{o['min']}..{o['max']}")
    if spec.optional:
        bits.append("optional")
    tip = f" — {o['tooltip']}" if o.get("tooltip") else ""
    return f"`{spec.name}` ({'; '.join(bits)}){tip}"


def render_docs(schemas: dict) -> str:
    """docs/nodes.md from the node definitions ComfyUI reports (the snapshot)."""
    from .workflow_format import input_specs, outputs

    nodes = [k for k in DOC_ORDER if k in schemas] + sorted(
        k for k in schemas if k.startswith(PACK_PREFIX) and k not in DOC_ORDER)
    lines = ["# Syn2Seq nodes", "",
             "Generated from ComfyUI's `/object_info` by `python -m tests.nodes.make_workflows` (do not edit by hand).",
             "Node ids and input names are stable: saved workflows refer to them. Frames travel as ComfyUI `IMAGE`",
             "batches; `SYN2SEQ_CAMERAS`, `SYN2SEQ_SEQUENCE`, `SYN2SEQ_MODEL` and `SYN2SEQ_RAYS` carry the core",
             "library's objects between Syn2Seq nodes. Save videos with ComfyUI's own `CreateVideo` + `SaveVideo`.",
             "", "| node | category | what it does |", "| --- | --- | --- |"]
    for k in nodes:
        first = schemas[k]["description"].split(". ")[0].rstrip(".")
        lines.append(f"| `{k}` | {schemas[k]['category']} | {first.replace('|', '/')}. |")
    for k in nodes:
        s = schemas[k]
        lines += ["", f"## {s['display_name']} (`{k}`)", "", s["description"], "", "Inputs:", ""]
        lines += [f"- {_input_doc(spec)}" for spec in input_specs(s)]
        lines += ["", "Outputs:", ""]
        tips = s.get("output_tooltips") or [None] * len(s["output"])
        for (name, type_), tip in zip(outputs(s), tips):
            lines.append(f"- `{name}` ({type_})" + (f" — {tip}" if tip else ""))
    return "\n".join(lines) + "\n"


def write_docs() -> None:
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    text = render_docs(load_snapshot())
    tmp = DOCS.with_name(f".{DOCS.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(DOCS)
    print(f"wrote {DOCS.relative_to(PACK_ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", action="store_true", help="re-read /object_info from $COMFYUI_PATH first")
    args = parser.parse_args(argv)
    if args.snapshot:
        refresh_snapshot()
    write_workflows()
    write_docs()
    return 0


if __name__ == "__main__":
    sys.exit(main())
