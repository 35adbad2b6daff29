"""The package's layout, read from its imports (``ast``, every import, the lazy ones inside functions too).

- No import cycle between modules.
- A package imports only packages of lower layers (:data:`syn2seq_core.LAYERS`), never one beside or above it.
- Inside the package every import is relative (it must work under any package name: ComfyUI loads the pack folder
  under a name made from its path), and no module imports another by a string naming ``syn2seq_core``.
- Every subpackage says what lives in it (a docstring), and every subpackage has a layer.

The checkers are also run on a small package written here with a cycle and an upward import, so they can fail.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import syn2seq_core

CORE = Path(syn2seq_core.__file__).resolve().parent


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports (resolved: ``from .x import y`` is module ``x.y`` when that is a
    module, else ``x``)."""
    pkg = root.name
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] == pkg}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != pkg:
                    continue
                for a in node.names:
                    found.add(f"{target}.{a.name}" if f"{target}.{a.name}" in files else target)
        graph[name] = {m for m in found if m in files and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def top_package(module: str) -> str | None:
    """``syn2seq_core.io.video`` -> ``io``; the package itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def layer_violations(graph: dict[str, set[str]], layers) -> list[str]:
    """Imports of a package beside or above the importer's (packages not in ``layers`` are reported too)."""
    rank = {p: i for i, group in enumerate(layers) for p in group}
    bad = []
    for src, targets in sorted(graph.items()):
        a = top_package(src)
        for dst in sorted(targets):
            b = top_package(dst)
            if a is None or b is None or a == b:
                if a is None and dst != src and b is not None:
                    bad.append(f"{src} -> {dst}: the package's __init__ imports a subpackage")
                continue
            if a not in rank or b not in rank:
                bad.append(f"{src} -> {dst}: {a if a not in rank else b} has no layer")
            elif rank[b] >= rank[a]:
                where = "beside" if rank[b] == rank[a] else "above"
                bad.append(f"{src} -> {dst}: {b} is {where} {a}")
    return bad


def test_no_module_imports_itself_back():
    assert cycles(import_graph(CORE)) == []


def test_packages_import_only_lower_layers():
    assert layer_violations(import_graph(CORE), syn2seq_core.LAYERS) == []


def test_every_package_has_a_layer_and_says_what_lives_in_it():
    packages = sorted(p.parent.name for p in CORE.glob("*/__init__.py"))
    roots = sorted(p.stem for p in CORE.glob("*.py") if p.stem != "__init__")
    declared = sorted(p for group in syn2seq_core.LAYERS for p in group)
    assert declared == sorted(packages + roots)
    for name in packages:
        doc = ast.get_docstring(ast.parse((CORE / name / "__init__.py").read_text(encoding="utf-8")))
        assert doc and len(doc) > 40, f"{name}/__init__.py: no docstring saying what lives there"
        assert f"``{name}/``" in (syn2seq_core.__doc__ or ""), f"{name}/ is missing from the package map"


def absolute_imports(root: Path) -> list[tuple[str, str]]:
    """(file relative to ``root``, module) of every absolute import under ``root`` (``import m`` and
    ``from m import ...``), lazy ones too."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(root)), a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.append((str(path.relative_to(root)), node.module))
    return found


def test_imports_inside_the_core_are_relative():
    absolute = [f"{path}: {module}" for path, module in absolute_imports(CORE) if module.split(".")[0] == CORE.name]
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
                    in ("import_module", "__import__") and node.args
                    and isinstance(node.args[0], (ast.Constant, ast.JoinedStr))):
                if re.search(rf"\b{CORE.name}\b", ast.unparse(node.args[0])):
                    absolute.append(f"{path.relative_to(CORE)}: {ast.unparse(node)}")
    assert absolute == []


def write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_the_checkers_find_a_cycle_and_an_upward_import(tmp_path):
    pkg = write_package(tmp_path / "pkg", {
        "__init__.py": "",
        "low/__init__.py": '"""low"""',
        "low/a.py": "def f():\n    from ..high.b import g  # lazy, still counted\n",
        "high/__init__.py": '"""high"""',
        "high/b.py": "from ..low import a\n",
        "low/c.py": "from . import d\n",
        "low/d.py": "from .c import x\n",
        "side/__init__.py": "",
        "side/e.py": "import pkg.low.a\n",
    })
    graph = import_graph(pkg)
    assert graph["pkg.low.a"] == {"pkg.high.b"}
    assert graph["pkg.low.c"] == {"pkg.low.d"}
    assert cycles(graph) == [["pkg.high.b", "pkg.low.a"], ["pkg.low.c", "pkg.low.d"]]
    layers = (("low",), ("high", "side"))
    assert layer_violations(graph, layers) == ["pkg.low.a -> pkg.high.b: high is above low"]
    assert layer_violations(graph, (("low",), ("high",))) == [
        "pkg.low.a -> pkg.high.b: high is above low", "pkg.side.e -> pkg.low.a: side has no layer"]
    assert layer_violations({"pkg.high.b": {"pkg.side.e"}, "pkg.side.e": set()}, layers) == [
        "pkg.high.b -> pkg.side.e: side is beside high"]
