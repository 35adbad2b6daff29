"""syn2seq_core must run without ComfyUI: no module under it may import comfy, folder_paths, etc."""

import pathlib
import subprocess
import sys

from .test_layers import absolute_imports

CORE = pathlib.Path(__file__).resolve().parents[2] / "syn2seq_core"
FORBIDDEN = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "nodes", "execution"}


def test_no_comfy_imports_in_source():
    offenders = [f"{path}: {module}" for path, module in absolute_imports(CORE) if module.split(".")[0] in FORBIDDEN]
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
