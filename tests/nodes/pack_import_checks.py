"""Loads the pack exactly as ComfyUI does and checks that its core is loaded once, under the pack's own name.

    $COMFYUI_PYTHON tests/nodes/pack_import_checks.py COMFYUI_PATH WORK_DIR MODE [SITE]

ComfyUI's own ``nodes.load_custom_node`` loads a link to this pack in ``WORK_DIR/custom_nodes`` (a module named
after the folder's path, ``.`` written ``_x_``), every node of the pack runs once on the bundled model and sample
take (the code paths that import the core), and the script prints one JSON object ``{check_name: {"ok": bool,
"detail": str}}`` that ``test_pack_imports.py`` asserts. MODE says whether ``syn2seq_core`` is importable by its
absolute name as well: ``plain`` (not importable: a custom-node folder, no pip install), ``editable`` (``SITE`` holds
a link to this pack's own ``syn2seq_core``, what ``pip install -e`` maps the name to) or ``installed`` (``SITE`` is
a regular install of the pack, another copy of the files).
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import json
import os
import sys
import traceback
from collections import defaultdict
from pathlib import Path

import inprocess_checks  # this script's folder is sys.path[0]; comfy_environment() takes it off again

PACK = Path(__file__).resolve().parents[2]
LINK_NAME = "ComfyUI-Syn2Seq.dev"  # a dot in the folder name, as ComfyUI rewrites it to "_x_" in the module name
MODES = ("plain", "editable", "installed")


def setup(comfy: str, work: Path, mode: str, site: str | None) -> str:
    """sys.path as ComfyUI's main.py has it (plus ``site`` at the end); returns where ``syn2seq_core`` resolves."""
    inprocess_checks.comfy_environment(comfy, work)
    if site is not None:
        sys.path.append(site)
    (work / "custom_nodes").mkdir(parents=True, exist_ok=True)
    spec = importlib.util.find_spec("syn2seq_core")  # a top-level name: found, not imported
    return "" if spec is None else str(Path(spec.origin).resolve())


def load_pack(work: Path) -> tuple[str, bool]:
    """The pack loaded by ComfyUI's own loader from a link in ``custom_nodes``: (module name, loaded)."""
    import nodes as comfy_nodes  # ComfyUI's nodes.py: the pack's own `nodes` package is not on sys.path

    link = work / "custom_nodes" / LINK_NAME
    if not link.exists():
        link.symlink_to(PACK, target_is_directory=True)
    loaded = asyncio.run(comfy_nodes.load_custom_node(str(link)))
    return str(link).replace(".", "_x_"), loaded  # load_custom_node's sys_module_name


def run_every_node(pack: str) -> tuple[list[str], list[str]]:
    """Each node of the pack once, through ComfyUI's registry, on the bundled model and sample take (one sampler
    step); returns the pack's node ids in ComfyUI's registry and those that ran."""
    import nodes as comfy_nodes
    import torch

    N = {k: v for k, v in comfy_nodes.NODE_CLASS_MAPPINGS.items() if k.startswith("Syn2Seq")}
    ran = []

    def run(node_id, *args, **kwargs):
        ran.append(node_id)
        return N[node_id].execute(*args, **kwargs).result

    model, width, height, n_tr = run("Syn2SeqLoadModel", "bundled", "auto")
    exo, ego, exo_cams, ego_cams, _, exo_depth, _ = run("Syn2SeqLoadTake", "(bundled) sample_take", width, height,
                                                        0, 0, 1)
    assert N["Syn2SeqLoadTake"].validate_inputs(width=width, height=height) is True
    run("Syn2SeqLoadCameras", "(bundled) sample_take/exo_cameras.json", "auto", exo)
    keyframes = sys.modules[f"{pack}.nodes.camera_paths"].DEFAULT_KEYFRAMES
    assert N["Syn2SeqCameraPath"].validate_inputs("keyframes", keyframes) is True
    run("Syn2SeqCameraPath", "orbit", 5, 8.0, width, height, 60.0, 0.0, -4.0, 1.6, 0.0, 0.0, 1.0, 90.0, 2.0, 1.4, "")
    run("Syn2SeqTransitionPoses", exo_cams, ego_cams, 2)
    run("Syn2SeqPluckerRays", ego_cams, 16, 16, "dm", True)
    run("Syn2SeqEstimateCameras", ego, "global", True, 0.0, "pinhole", 1, 0, 640, 0.5, 0.0, 0)  # static: no SfM
    assert N["Syn2SeqWanCameraEmbedding"].validate_inputs(width=832, height=480, length=81) is True
    run("Syn2SeqWanCameraEmbedding", ego_cams, 32, 32, 5, start_cameras=exo_cams)
    run("Syn2SeqInterpolate", exo, ego, 2, "blend")
    run("Syn2SeqWanFramesToTransition", torch.rand(9, 16, 16, 3), 2, "nearest")
    sequence, _ = run("Syn2SeqBuildSequence", exo_cams, ego_cams, "exo2ego", n_tr, exo_frames=exo,
                      source_depth=exo_depth)
    run("Syn2SeqDepthFromImage", torch.rand(len(exo), height, width, 3) + 0.1, "inverse", 3.3)
    generated, _ = run("Syn2SeqSampler", model, sequence, 1, "full_sequence", "conditional", 1.0, 0)
    _, _, generated_ego = run("Syn2SeqSplitSequence", generated)
    run("Syn2SeqConditionalMean", model, sequence, 1, 0)
    run("Syn2SeqImageToVideo", model, exo[:1], ego_cams, "0", "sliding", 0.0625, 1, "full_sequence", "conditional",
        1.0, 0.0, 0)
    run("Syn2SeqEvaluate", generated_ego, ego, "none")
    # The sampler's preview strip (only drawn with --preview-method set): the pack's progress module directly.
    progress = sys.modules[f"{pack}.nodes.progress"]
    x0 = torch.zeros(1, len(sequence), 3, height, width)
    strip = progress.x0_strip({"x0": x0, "generate": sequence.context_mask[None] == 0}, model.model.config)
    assert strip is not None
    return sorted(N), sorted(set(ran))


def core_imports_of_the_nodes(pack: str) -> list[tuple[str, str, str]]:
    """(node file, core module, name) of every ``from ..syn2seq_core... import name`` in ``nodes/*.py``, read from
    the source, with the absolute module each names under the pack's module name."""
    out = []
    for path in sorted((PACK / "nodes").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            parts = f"{pack}.nodes".split(".")
            base = ".".join(parts[:len(parts) - node.level + 1])
            module = f"{base}.{node.module}" if node.module else base
            for alias in node.names:
                if f"{module}.{alias.name}".startswith(f"{pack}.syn2seq_core"):
                    out.append((path.name, module, alias.name))
    return out


def is_pack_file(real_path: str) -> bool:
    """Whether a file is one of the pack's modules (its ``__init__.py``, ``nodes/``, ``syn2seq_core/``)."""
    root = os.path.realpath(PACK)
    return real_path == os.path.join(root, "__init__.py") or any(
        real_path.startswith(os.path.join(root, sub) + os.sep) for sub in ("nodes", "syn2seq_core"))


def module_files() -> dict[str, list[str]]:
    """Real path of each loaded module's file -> the names it is loaded under."""
    files = defaultdict(list)
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str):
            files[os.path.realpath(file)].append(name)
    return files


def main(argv: list[str]) -> int:
    comfy, work, mode = argv[1], Path(argv[2]), argv[3]
    site = argv[4] if len(argv) > 4 else None
    assert mode in MODES, mode
    results = {}

    def report(name, ok, detail):
        results[name] = {"ok": bool(ok), "detail": str(detail)}

    resolves = setup(comfy, work, mode, site)
    expected = {"plain": "", "editable": str(PACK / "syn2seq_core" / "__init__.py"),
                "installed": str(Path(site or "-").resolve() / "syn2seq_core" / "__init__.py")}[mode]
    report("syn2seq_core_resolves_as_the_mode_says", resolves == expected,
           f"mode {mode}: the absolute name syn2seq_core resolves to {resolves or 'nothing'} (expected "
           f"{expected or 'nothing'})")
    before = set(sys.modules)
    try:
        pack, loaded = load_pack(work)
        report("comfyui_loads_the_pack", loaded and pack in sys.modules,
               f"nodes.load_custom_node -> {loaded}; module {pack!r}")
        registered, ran = run_every_node(pack)
        report("every_node_runs", len(registered) == 17 and ran == registered,
               f"{len(ran)} of the {len(registered)} registered nodes ran; not run: "
               f"{sorted(set(registered) - set(ran))}")
    except Exception:  # noqa: BLE001 - the failure is the report
        report("every_node_runs", False, traceback.format_exc())
        print("SYN2SEQ_RESULTS " + json.dumps(results))
        return 0
    missing, wrong = [], []
    imports = core_imports_of_the_nodes(pack)
    for file, module, name in imports:
        if module not in sys.modules:
            missing.append(f"{file}: {module}")
        elif not hasattr(sys.modules[module], name) and f"{module}.{name}" not in sys.modules:
            wrong.append(f"{file}: {module} has no {name}")
    report("every_core_import_of_the_nodes_ran", imports and not missing and not wrong,
           f"{len(imports)} names imported from the core in nodes/*.py; modules never imported by the runs: "
           f"{sorted(set(missing))}; names not found: {wrong}")
    new = set(sys.modules) - before
    absolute = sorted(m for m in new if m.split(".")[0] == "syn2seq_core")
    own = sorted(m for m in new if m.startswith(f"{pack}.syn2seq_core."))
    report("no_absolute_syn2seq_core_module", not absolute and own,
           f"{len(own)} core modules loaded as {pack}.syn2seq_core.*; absolute syn2seq_core modules: {absolute}")
    files = module_files()
    mine = {f: names for f, names in files.items() if is_pack_file(f) or f"{os.sep}syn2seq_core{os.sep}" in f}
    twice = {f: sorted(names) for f, names in mine.items() if len(names) > 1}
    report("no_file_loaded_under_two_names", mine and not twice,
           f"{len(mine)} files of the pack (or of any copy of syn2seq_core) loaded; under two names: {twice}")
    strays = sorted(f"{names} from {f}" for f, names in mine.items()
                    if not is_pack_file(f) or any(n != pack and not n.startswith(pack + ".") for n in names))
    report("every_pack_file_is_under_the_pack_name", not strays,
           f"pack files under another name, or core files from another copy: {strays}")
    print("SYN2SEQ_RESULTS " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
