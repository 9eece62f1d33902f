"""The architecture as tests: layers that only point down (the import-linter contracts in
`.importlinter`), no import cycle between any two modules of the studio, and no import hidden
inside a function to dodge one (deferred imports are for heavy optional libraries, with a reason)."""

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("portal", "endpoints", "training", "data", "compute", "workspaces", "studio", "modelformat")


def test_the_import_linter_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_two_modules_of_the_studio_import_each_other():
    graph = grimp.build_graph(*PACKAGES, cache_dir=None, exclude_type_checking_imports=True)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert _cycles(graph) == [["a.x", "a.y"]]


def _hidden_imports(source: str, label: str) -> list[str]:
    """Imports inside function bodies with no `# deferred: <reason>` (on the import or the line above
    it) in their function, outside an `AppConfig.ready` (where Django wants an app's registrations)."""
    lines = source.splitlines()
    found = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) or function.name == "ready":
            continue
        imports = [node for node in ast.walk(function) if isinstance(node, ast.Import | ast.ImportFrom)]
        if any("# deferred:" in lines[node.lineno - 1] + lines[node.lineno - 2] for node in imports):
            continue
        found += [f"{label}:{node.lineno}: {lines[node.lineno - 1].strip()}" for node in imports]
    return found


def test_no_import_hides_inside_a_function():
    hidden = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                hidden += _hidden_imports(path.read_text(), str(path.relative_to(ROOT)))
    assert hidden == []


@pytest.mark.parametrize(
    ("body", "hidden"),
    [
        ("def f():\n    from studio import ids\n", 1),
        ("def f():\n    import plotly  # deferred: heavy\n", 0),
        ("def f():\n    # deferred: heavy\n    import plotly\n    import onnx\n", 0),
        ("class C:\n    def ready(self):\n        from . import jobs\n", 0),
    ],
)
def test_the_hidden_import_check_tells_them_apart(body, hidden):
    assert len(_hidden_imports(body, "probe.py")) == hidden
