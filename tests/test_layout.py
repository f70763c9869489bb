"""The house's rules (issue 31): modules of a readable size, packages that import one way only, tools run as
modules without path tricks or private cross-imports."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 400


def _imports(path: Path) -> list[str]:
    """Every module a file imports, at any depth (function-level imports count too)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def package_graph() -> dict[str, set[str]]:
    """{pcc package: pcc packages it imports}; a top-level module (pcc/volume.py) counts as its own package."""
    graph: dict[str, set[str]] = {}
    for path in (REPO / "pcc").rglob("*.py"):
        source = path.relative_to(REPO / "pcc").parts[0].removesuffix(".py")
        edges = graph.setdefault(source, set())
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "pcc" and len(parts) > 1 and parts[1] != source:
                edges.add(parts[1])
    return graph


def test_no_module_in_pcc_is_longer_than_the_limit():
    long = {str(p.relative_to(REPO)): n for p in (REPO / "pcc").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (at most {MAX_LINES} lines): {long}"


def test_packages_import_one_way_only():
    graph = package_graph()
    order: list[str] = []  # a topological order exists exactly when there is no cycle
    remaining = {package: set(edges) & set(graph) for package, edges in graph.items()}
    while remaining:
        ready = sorted(p for p, edges in remaining.items() if not edges - set(order))
        assert ready, f"import cycle among pcc packages: { {p: sorted(e - set(order)) for p, e in remaining.items()} }"
        order += ready
        for package in ready:
            del remaining[package]
    assert order.index("design") < order.index("learning"), "design must not import learning"
    assert order.index("pipeline") < order.index("cli")


def test_the_pipeline_is_visible_from_the_package_listing():
    steps = {p.stem for p in (REPO / "pcc" / "pipeline").glob("*.py")}
    assert {"read", "design", "assess", "printing", "preview", "case", "runner"} <= steps


def test_tools_run_as_modules_without_path_tricks_or_private_cross_imports():
    for path in (REPO / "tools").rglob("*.py"):
        text = path.read_text()
        assert "sys.path.insert" not in text, f"{path}: import through the package (python -m tools...)"
        assert "Path(__file__).resolve()), \"--" not in text, f"{path}: run a tool as a module (python -m tools...), not by its path"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tools"):
                private = [alias.name for alias in node.names if alias.name.startswith("_")]
                assert not private, f"{path}: imports private {private} from {node.module}: make them public in a shared module"
    groups = {p.name for p in (REPO / "tools").iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert groups == {"benchmarks", "analysis", "release"}
    assert (REPO / "tools" / "README.md").is_file()
