"""ComfyUI workflow files: build the UI and API formats from one graph, and read UI files back as API.

The node definitions come from ``/object_info`` of a real ComfyUI (the saved snapshot
``object_info_snapshot.json``, refreshed by ``python -m tests.nodes.make_workflows --snapshot``).

UI format (what the frontend saves, frontend 1.27): ``nodes[]`` with ``inputs`` listing the socket inputs
(and widget inputs only when a link drives them, with ``"widget": {"name": ...}``), ``widgets_values`` in
the order of the node's widget inputs (plus one "control after generate" value after an input that has
one), ``links[] = [id, from_node, from_slot, to_node, to_slot, type]`` where ``to_slot`` indexes the
target node's ``inputs`` list. API format (what ``/prompt`` takes): ``{id: {"class_type", "inputs"}}``
with a link as ``[from_node_id, from_slot]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("object_info_snapshot.json")
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Nodes the frontend defines itself: they appear in UI files and never reach /prompt.
FRONTEND_ONLY = {"Note", "MarkdownNote"}


@dataclass(frozen=True)
class Link:
    node: int
    slot: int


@dataclass
class Node:
    id: int
    type: str
    inputs: dict = field(default_factory=dict)  # name -> constant or Link
    pos: tuple[float, float] = (0.0, 0.0)
    size: tuple[float, float] | None = None
    title: str | None = None
    text: str | None = None  # the body of a Note / MarkdownNote
    properties: dict = field(default_factory=dict)


def load_snapshot(path: Path = SNAPSHOT) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))["nodes"]


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str  # "INT", "COMBO", "IMAGE", ...
    options: dict
    optional: bool

    @property
    def is_widget(self) -> bool:
        return self.type in WIDGET_TYPES and not self.options.get("forceInput")

    @property
    def has_control(self) -> bool:
        return bool(self.options.get("control_after_generate"))


def input_specs(schema: dict) -> list[InputSpec]:
    """A node's inputs in the order the frontend creates them (required, then optional)."""
    out = []
    order = schema.get("input_order") or {k: list(v) for k, v in schema["input"].items()}
    for group in ("required", "optional"):
        for name in order.get(group, []):
            spec = schema["input"][group][name]
            type_ = spec[0]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if isinstance(type_, list):  # V1 combo: the options list itself
                options = dict(options, options=type_)
                type_ = "COMBO"
            out.append(InputSpec(name, type_, options, group == "optional"))
    return out


def outputs(schema: dict) -> list[tuple[str, str]]:
    """(name, type) of each output slot."""
    types = schema["output"]
    names = schema.get("output_name") or types
    return [(str(n), t if isinstance(t, str) else "COMBO") for n, t in zip(names, types)]


def signature(schema: dict) -> dict:
    """What a workflow depends on in a node definition: inputs (name, type, required, widget range and
    options) in order, and output types. Tooltips and display names are left out."""
    ins = []
    for s in input_specs(schema):
        keep = {k: s.options[k] for k in ("default", "min", "max", "options", "control_after_generate")
                if k in s.options}
        ins.append([s.name, s.type, s.optional, keep])
    return {"inputs": ins, "outputs": [t for _, t in outputs(schema)]}


def default_value(spec: InputSpec):
    if "default" in spec.options:
        return spec.options["default"]
    if spec.type == "COMBO":
        opts = spec.options.get("options") or []
        return opts[0] if opts else ""
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[spec.type]


def build(nodes: list[Node], schemas: dict, name: str) -> tuple[dict, dict]:
    """(UI workflow, API prompt) of a graph. Widgets not given take their defaults from the schema."""
    by_id = {n.id: n for n in nodes}
    links = []  # [id, from, from_slot, to, to_slot, type]
    ui_nodes, api = [], {}
    out_links: dict[tuple[int, int], list[int]] = {}
    for n in nodes:  # check every given input exists, and collect links
        if n.type in FRONTEND_ONLY:
            continue
        known = {s.name for s in input_specs(schemas[n.type])}
        unknown = set(n.inputs) - known
        if unknown:
            raise ValueError(f"{name}: node {n.id} ({n.type}) has no inputs {sorted(unknown)}")
    for order, n in enumerate(nodes):
        if n.type in FRONTEND_ONLY:
            ui_nodes.append({
                "id": n.id, "type": n.type, "pos": list(n.pos), "size": list(n.size or (400, 200)), "flags": {},
                "order": order, "mode": 0, "inputs": [], "outputs": [], "title": n.title or "Note",
                "properties": {}, "widgets_values": [n.text or ""], "color": "#432", "bgcolor": "#653",
            })
            continue
        schema = schemas[n.type]
        ui_inputs, widgets, api_inputs = [], [], {}
        for spec in input_specs(schema):
            value = n.inputs.get(spec.name)
            if isinstance(value, Link):
                src = by_id[value.node]
                src_type = outputs(schemas[src.type])[value.slot][1]
                link_id = len(links) + 1
                entry = {"name": spec.name, "type": spec.type, "link": link_id}
                if spec.is_widget:
                    entry["widget"] = {"name": spec.name}
                elif spec.optional:
                    entry["shape"] = 7
                links.append([link_id, src.id, value.slot, n.id, len(ui_inputs), src_type])
                out_links.setdefault((src.id, value.slot), []).append(link_id)
                ui_inputs.append(entry)
                api_inputs[spec.name] = [str(src.id), value.slot]
                if spec.is_widget:
                    widgets.append(default_value(spec))
                    if spec.has_control:
                        widgets.append("fixed")
                continue
            if spec.is_widget:
                v = default_value(spec) if value is None else value
                widgets.append(v)
                if spec.has_control:
                    widgets.append("fixed")
                api_inputs[spec.name] = v
            else:
                if value is not None:
                    raise ValueError(f"{name}: node {n.id} input {spec.name} is a socket; give a Link")
                entry = {"name": spec.name, "type": spec.type, "link": None}
                if spec.optional:
                    entry["shape"] = 7
                ui_inputs.append(entry)
        ui_node = {
            "id": n.id, "type": n.type, "pos": list(n.pos), "size": list(n.size or (320, 160)), "flags": {},
            "order": order, "mode": 0, "inputs": ui_inputs, "outputs": [],
            "properties": {"Node name for S&R": n.type, **n.properties}, "widgets_values": widgets,
        }
        if n.title:
            ui_node["title"] = n.title
        ui_nodes.append(ui_node)
        api[str(n.id)] = {"class_type": n.type, "inputs": api_inputs, "_meta": {"title": n.title or n.type}}
    for ui_node in ui_nodes:
        if ui_node["type"] in FRONTEND_ONLY:
            continue
        ui_node["outputs"] = [{"name": oname, "type": otype, "links": out_links.get((ui_node["id"], i)) or None,
                               "slot_index": i}
                              for i, (oname, otype) in enumerate(outputs(schemas[ui_node["type"]]))]
    ui = {
        "id": _workflow_uuid(name), "revision": 0,
        "last_node_id": max(n.id for n in nodes), "last_link_id": len(links),
        "nodes": ui_nodes, "links": links, "groups": [], "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [40, 40]}, "syn2seq_workflow": name},
        "version": 0.4,
    }
    return ui, api


def _workflow_uuid(name: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"syn2seq/workflows/{name}"))


def ui_to_api(ui: dict, schemas: dict) -> dict:
    """What the frontend's "Export (API)" gives for a UI workflow (active nodes, links, widget values)."""
    link_src = {l[0]: (l[1], l[2]) for l in ui["links"]}
    api = {}
    for node in ui["nodes"]:
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) in (2, 4):  # muted / bypassed
            continue
        schema = schemas[node["type"]]
        linked = {i["name"]: link_src[i["link"]] for i in node.get("inputs", []) if i.get("link") is not None}
        inputs: dict = {}
        values = list(node.get("widgets_values") or [])
        k = 0
        for spec in input_specs(schema):
            if spec.is_widget:
                value = values[k] if k < len(values) else None
                k += 1 + (1 if spec.has_control else 0)
                if spec.name not in linked:
                    inputs[spec.name] = value
            if spec.name in linked:
                src, slot = linked[spec.name]
                inputs[spec.name] = [str(src), slot]
        if k != len(values):
            raise ValueError(f"node {node['id']} ({node['type']}): {len(values)} widget values, the schema has {k}")
        api[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return api


def strip_meta(api: dict) -> dict:
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON atomically (temp file in the same folder, then replace)."""
    import os
    import tempfile

    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
