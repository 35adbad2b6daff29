"""The nodes import the core beside them as ordinary relative imports, and the pack works three ways: as a ComfyUI
custom-node folder with no pip install, next to an editable install of itself, and next to a regular install.

Inside ComfyUI the pack is a package named after its folder's path (``nodes.load_custom_node``), so its core is
``<pack>.syn2seq_core``. The absolute name ``syn2seq_core`` (a pip install) must never be loaded by the pack: a
module loaded under both names would be two copies of every class (``isinstance`` across them fails) and of every
registry. ``pack_import_checks.py`` loads the pack with ComfyUI's own loader in ComfyUI's Python, runs every node
once, and reports what ``sys.modules`` holds; the tests here assert it for each way ``syn2seq_core`` may resolve.
The regular install is also run as the ``syn2seq`` command from outside the repository, bundled assets included.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import PACK_ROOT, run_inprocess_checks

SCRIPT = PACK_ROOT / "tests" / "nodes" / "pack_import_checks.py"
CHECK_NAMES = [
    "syn2seq_core_resolves_as_the_mode_says",
    "comfyui_loads_the_pack",
    "every_node_runs",
    "every_core_import_of_the_nodes_ran",
    "no_absolute_syn2seq_core_module",
    "no_file_loaded_under_two_names",
    "every_pack_file_is_under_the_pack_name",
]
# What a regular install needs from the working tree (pyproject.toml names the readme and the licence).
PACKAGE_FILES = ("syn2seq_core", "pyproject.toml", "README.md", "LICENSE")


def test_nodes_import_the_core_only_relatively():
    """No string imports (importlib, __import__) and no absolute ``syn2seq_core`` import in ``nodes/``."""
    problems = []
    for path in sorted((PACK_ROOT / "nodes").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.Name) and node.id == "__import__":
                names = ["__import__"]
            bad = [n for n in names if n.split(".")[0] in ("importlib", "syn2seq_core", "__import__")]
            problems += [f"{path.name}:{node.lineno}: {n}" for n in bad]
    assert not problems, problems


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A regular (non-editable) install of the working tree's package into a folder of its own:
    ``pip install --no-deps --no-build-isolation --target SITE`` of a copy of the package's files (so that the
    build writes nothing into the repository)."""
    tmp = tmp_path_factory.mktemp("regular-install")
    src, site = tmp / "src", tmp / "site"
    src.mkdir()
    for name in PACKAGE_FILES:
        from_path = PACK_ROOT / name
        if from_path.is_dir():
            shutil.copytree(from_path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(from_path, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "--target", str(site), str(src)],
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0 and "No module named pip" in proc.stderr:
        pytest.skip(f"no pip in {sys.executable}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return site


def test_a_regular_install_runs_from_outside_the_repository(installed, tmp_path):
    """With only the install on PYTHONPATH and the working folder outside the repository: the package and its
    bundled model and sample take come from the install, and ``python -m syn2seq_core`` (--help, selfcheck, demo on
    the bundled take with the bundled model) and the ``syn2seq`` script work."""
    env = dict(os.environ, PYTHONPATH=str(installed))
    env.pop("SYN2SEQ_DEBUG", None)

    def run(*args):
        proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout

    where = run(sys.executable, "-c", "import syn2seq_core; from syn2seq_core.generation.pipeline import "
                "BUNDLED_MODEL; from syn2seq_core.commands.demo import SAMPLE_TAKE; "
                "print(syn2seq_core.__file__, BUNDLED_MODEL, SAMPLE_TAKE, sep='\\n')").split()
    package, model, take = (Path(p) for p in where)
    assert package == installed / "syn2seq_core" / "__init__.py"
    assert model.is_file() and model.is_relative_to(installed), model
    assert (take / "take.json").is_file() and take.is_relative_to(installed), take
    assert "selfcheck" in run(sys.executable, "-m", "syn2seq_core", "--help")
    assert "syn2seq selfcheck: OK" in run(sys.executable, "-m", "syn2seq_core", "selfcheck", "--quiet")
    out = tmp_path / "demo"
    run(sys.executable, "-m", "syn2seq_core", "demo", "--out", str(out), "--steps", "1")
    assert (out / "ego_generated.mp4").stat().st_size > 0 and (out / "metrics.json").is_file()
    assert "usage: syn2seq" in run(str(installed / "bin" / "syn2seq"), "--help")


@pytest.fixture
def syn2seq_core_site(request, tmp_path):
    """Where the absolute name ``syn2seq_core`` resolves in the ComfyUI process, by mode: nowhere; this pack's own
    folder (what ``pip install -e`` maps the name to: the same files); a regular install (another copy)."""
    mode = request.param
    if mode == "plain":
        return mode, ()
    if mode == "editable":
        site = tmp_path / "editable-site"
        site.mkdir()
        (site / "syn2seq_core").symlink_to(PACK_ROOT / "syn2seq_core", target_is_directory=True)
        return mode, (str(site),)
    return mode, (str(request.getfixturevalue("installed")),)


@pytest.mark.parametrize("syn2seq_core_site", ["plain", "editable", "installed"], indirect=True)
def test_comfyui_loads_the_core_once_under_the_pack_name(comfy_install, syn2seq_core_site, tmp_path):
    mode, site = syn2seq_core_site
    results = run_inprocess_checks(comfy_install, SCRIPT, tmp_path / "work", timeout=300, args=(mode, *site))
    failed = {name: r["detail"] for name, r in results.items() if not r["ok"]}
    assert sorted(results) == sorted(CHECK_NAMES) and not failed, failed or sorted(results)
    print(f"\n[syn2seq] pack imports ({mode}): {results['no_absolute_syn2seq_core_module']['detail']}")
