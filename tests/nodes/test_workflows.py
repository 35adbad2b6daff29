"""Workflow files against the node definitions, without ComfyUI.

Node definitions: ``object_info_snapshot.json`` (real ``/object_info`` output of the pack's nodes and of the
ComfyUI core nodes the workflows use; compared with a live server in ``test_comfyui_server.py``). The pack's
own schemas are also read from ``nodes/*.py`` with ``ast`` (no ComfyUI import), so a node changed in code
but not re-snapshotted is caught here.
"""

from __future__ import annotations

import ast
import json

import pytest

from . import graphs
from .harness import PACK_ROOT
from .make_workflows import API_DIR
from .workflow_format import (
    FRONTEND_ONLY,
    build,
    input_specs,
    load_snapshot,
    outputs,
    strip_meta,
    ui_to_api,
)

WORKFLOW_DIR = PACK_ROOT / "workflows"
NAMES = sorted(graphs.WORKFLOWS)
ANY = "*"


@pytest.fixture(scope="module")
def schemas():
    return load_snapshot()


def read(name: str) -> dict:
    folder = API_DIR if name.endswith("_api.json") else WORKFLOW_DIR
    return json.loads((folder / name).read_text(encoding="utf-8"))


def test_every_workflow_has_an_api_twin_and_nothing_else_is_there():
    """workflows/*.json are what ComfyUI's template browser lists: UI files only; API twins in workflows/api/."""
    assert sorted(p.name for p in WORKFLOW_DIR.glob("*.json")) == sorted(f"{n}.json" for n in NAMES)
    assert sorted(p.name for p in API_DIR.glob("*.json")) == sorted(f"{n}_api.json" for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_ui_and_api_twins_agree(name, schemas):
    """The API twin is exactly what the UI file exports to: same nodes, links and widget values."""
    ui, api = read(f"{name}.json"), read(f"{name}_api.json")
    assert ui_to_api(ui, schemas) == strip_meta(api)


@pytest.mark.parametrize("name", NAMES)
def test_files_match_their_graph_definition(name, schemas):
    """workflows/*.json are generated from tests/nodes/graphs.py (run `python -m tests.nodes.make_workflows`)."""
    ui, api = build(graphs.WORKFLOWS[name](), schemas, name)
    assert read(f"{name}.json") == ui
    assert read(f"{name}_api.json") == api


def _check_value(node_type: str, spec, value, where: str) -> list[str]:
    errors = []
    if spec.type == "COMBO":
        if (node_type, spec.name) not in graphs.DYNAMIC_COMBOS and value not in spec.options.get("options", []):
            errors.append(f"{where}: {value!r} is not one of {spec.options.get('options')}")
    elif spec.type in ("INT", "FLOAT"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if spec.type == "INT":
            ok = ok and float(value).is_integer()
        if not ok:
            errors.append(f"{where}: {value!r} is not a number of type {spec.type}")
        else:
            if "min" in spec.options and value < spec.options["min"]:
                errors.append(f"{where}: {value} < min {spec.options['min']}")
            if "max" in spec.options and value > spec.options["max"]:
                errors.append(f"{where}: {value} > max {spec.options['max']}")
    elif spec.type == "STRING" and not isinstance(value, str):
        errors.append(f"{where}: {value!r} is not a string")
    elif spec.type == "BOOLEAN" and not isinstance(value, bool):
        errors.append(f"{where}: {value!r} is not a boolean")
    return errors


@pytest.mark.parametrize("name", NAMES)
def test_api_workflow_uses_only_defined_nodes_inputs_and_types(name, schemas):
    """Every node is a pack or core node in the snapshot; every input exists, required ones are given,
    widget values are in range / among the options, and every link joins an output to an input of its type."""
    api = read(f"{name}_api.json")
    errors = []
    for nid, node in api.items():
        t = node["class_type"]
        if t not in schemas:
            errors.append(f"node {nid}: unknown class_type {t}")
            continue
        specs = {s.name: s for s in input_specs(schemas[t])}
        for key in node["inputs"]:
            if key not in specs:
                errors.append(f"node {nid} ({t}): no input named {key!r}")
        for spec in specs.values():
            where = f"node {nid} ({t}).{spec.name}"
            if spec.name not in node["inputs"]:
                if not spec.optional:
                    errors.append(f"{where}: required input missing")
                continue
            value = node["inputs"][spec.name]
            if isinstance(value, list):
                src_id, slot = value
                if src_id not in api:
                    errors.append(f"{where}: link from missing node {src_id}")
                    continue
                src_outputs = outputs(schemas[api[src_id]["class_type"]])
                if not 0 <= slot < len(src_outputs):
                    errors.append(f"{where}: link from output {slot} of a node with {len(src_outputs)} outputs")
                    continue
                out_type = src_outputs[slot][1]
                if ANY not in (out_type, spec.type) and out_type != spec.type:
                    errors.append(f"{where}: {out_type} linked into an input of type {spec.type}")
            elif spec.is_widget:
                errors += _check_value(t, spec, value, where)
            else:
                errors.append(f"{where}: socket input of type {spec.type} given the constant {value!r}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("name", NAMES)
def test_ui_workflow_opens_without_missing_nodes(name, schemas):
    """Every node type of the UI file is defined (pack, core or frontend-only), and its link table is
    consistent with the node slots it names."""
    ui = read(f"{name}.json")
    nodes = {n["id"]: n for n in ui["nodes"]}
    missing = sorted({n["type"] for n in ui["nodes"] if n["type"] not in schemas and n["type"] not in FRONTEND_ONLY})
    assert not missing
    assert ui["last_node_id"] >= max(nodes)
    assert ui["last_link_id"] >= max((l[0] for l in ui["links"]), default=0)
    for link_id, src, src_slot, dst, dst_slot, type_ in ui["links"]:
        assert nodes[src]["outputs"][src_slot]["type"] == type_
        assert link_id in nodes[src]["outputs"][src_slot]["links"]
        assert nodes[dst]["inputs"][dst_slot]["link"] == link_id


# --- the pack's code against the snapshot (no ComfyUI needed) -------------------------------------------
def _string(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def pack_schemas_from_source() -> dict[str, dict]:
    """node_id -> {"inputs": [...], "outputs": [...]} read from the io.Schema(...) calls in nodes/*.py."""
    found = {}
    for path in sorted((PACK_ROOT / "nodes").glob("*.py")):
        for call in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "Schema"):
                continue
            kw = {k.arg: k.value for k in call.keywords}
            node_id = _string(kw.get("node_id"))
            if node_id is None:
                continue
            ids = {}
            for part in ("inputs", "outputs"):
                items = kw[part].elts if isinstance(kw.get(part), ast.List) else []
                ids[part] = [_string(i.args[0]) if i.args else _string({k.arg: k.value for k in i.keywords}.get("id"))
                             for i in items if isinstance(i, ast.Call)]
            found[node_id] = ids
    return found


def test_snapshot_lists_exactly_the_pack_nodes_with_their_inputs(schemas):
    source = pack_schemas_from_source()
    assert source, "no io.Schema(node_id=...) found in nodes/"
    snap = {k: v for k, v in schemas.items() if k.startswith("Syn2Seq")}
    assert sorted(source) == sorted(snap), "re-run `python -m tests.nodes.make_workflows --snapshot`"
    for node_id, ids in source.items():
        assert [s.name for s in input_specs(snap[node_id])] == ids["inputs"], node_id
        assert len(outputs(snap[node_id])) == len(ids["outputs"]), node_id


def test_node_docs_are_generated_from_the_snapshot(schemas):
    from .make_workflows import DOCS, render_docs

    assert DOCS.read_text(encoding="utf-8") == render_docs(schemas), "run `python -m tests.nodes.make_workflows`"


def test_pack_node_ids_are_prefixed():
    assert all(k.startswith("Syn2Seq") for k in pack_schemas_from_source())


def test_web_extension_never_puts_data_into_html():
    """The frontend extension writes server data with textContent / canvas text only."""
    for js in (PACK_ROOT / "web").glob("*.js"):
        text = js.read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{js.name} uses {sink}"


def test_bundled_sample_take_the_workflows_use_exists():
    from syn2seq_core.data.takes import is_take

    folder = PACK_ROOT / "syn2seq_core" / "assets" / graphs.SAMPLE_TAKE.removeprefix("(bundled) ")
    assert is_take(folder), f"{folder} is not a take folder"
