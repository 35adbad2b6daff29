"""syn2seq_core must run without ComfyUI: no module under it may import comfy, folder_paths, etc."""

import ast
import pathlib
import subprocess
import sys

CORE = pathlib.Path(__file__).resolve().parents[2] / "syn2seq_core"
FORBIDDEN = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "nodes", "execution"}


def test_no_comfy_imports_in_source():
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(CORE)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders


def test_importing_every_core_module_loads_no_comfy_module():
    code = (
        "import pkgutil, importlib, sys, syn2seq_core\n"
        "for m in pkgutil.walk_packages(syn2seq_core.__path__, 'syn2seq_core.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {sorted(FORBIDDEN)!r})\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
