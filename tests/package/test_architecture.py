"""Which way imports point: read from the source (function-level imports and importlib strings included), so a
lazy or string import cannot hide an upward pull or a circle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("rgbd_fusion_core", "rgbd_fusion_ros")
MODULE_STRING = re.compile(r"^rgbd_fusion_(core|ros)(\.\w+)+$|^rgbd_fusion_ros$")
# The inference layer: what a deployment needs to turn a frame into a cloud (it may export ONNX on demand).
INFERENCE = ("inference", "runtime", "geometry", "io", "people", "models")
NOT_INFERENCE = ("training", "evaluation", "synth", "apps", "cli", "data")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every project module ``path`` names: import statements anywhere, and strings that are module paths."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.match(node.value):
            names = [node.value]
        found |= {name for name in names if name in known or name.split(".")[0] in PACKAGES}
    return {name for name in found if name in known} | {n for n in found if n.split(".")[0] == "rgbd_fusion_ros"}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for package in PACKAGES for p in (REPO / package).rglob("*.py")}
    known = set(files)
    return {name: imports_of(path, known) - {name} for name, path in files.items()}


def closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_import_circle():
    graph = import_graph()
    circles = sorted(name for name in graph if name in closure(graph, name))
    assert not circles, f"modules that import themselves through others: {circles}"


def test_core_never_names_the_ros_package():
    graph = import_graph()
    offenders = {name: sorted(n for n in deps if n.startswith("rgbd_fusion_ros")) for name, deps in graph.items()}
    offenders = {name: deps for name, deps in offenders.items() if name.startswith("rgbd_fusion_core") and deps}
    assert not offenders, offenders


def test_inference_never_reaches_training_or_evaluation():
    graph = import_graph()
    for name in graph:
        layer = name.split(".")[1] if "." in name else ""
        if layer not in INFERENCE:
            continue
        reached = {n.split(".")[1] for n in closure(graph, name) if n.startswith("rgbd_fusion_core.") and "." in n}
        assert not reached & set(NOT_INFERENCE), f"{name} reaches {sorted(reached & set(NOT_INFERENCE))}"


def test_the_walk_sees_string_and_lazy_imports(tmp_path):
    """The checker itself: a string module path and a function-level import both count."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from rgbd_fusion_core.training import trainer\nX = 'rgbd_fusion_ros.bag_tool'\n")
    found = imports_of(sample, {"rgbd_fusion_core.training", "rgbd_fusion_core.training.trainer"})
    assert found == {"rgbd_fusion_core.training", "rgbd_fusion_core.training.trainer", "rgbd_fusion_ros.bag_tool"}
