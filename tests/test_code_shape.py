"""The package's shape, checked on its source: short functions, one training engine, imports
that run one way (training uses inference helpers, never the reverse), no default dictionaries."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "workflow" / "trafficfm"
MAX_LINES = 60
TRAINING = ("trafficfm.allinone.train", "trafficfm.retrieval.train", "trafficfm.engine")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent)
        name = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        yield name, path, ast.parse(path.read_text())


def _imports(name: str, tree: ast.Module, is_package: bool = False) -> set[str]:
    """Absolute names of the trafficfm modules a module imports (relative imports resolved)."""
    package = name.split(".") if is_package else name.split(".")[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out |= {module} | {f"{module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m.startswith("trafficfm")}


def test_no_function_longer_than_60_lines_outside_the_demo_generator():
    long = [f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for name, path, tree in _modules() if ".data.demo" not in name
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert not long, long


def test_only_training_imports_training():
    """Inference, evaluation and prediction never import a training module or the engine."""
    wrong = []
    for name, path, tree in _modules():
        if name.startswith(TRAINING) or name == "trafficfm.cli":
            continue
        wrong += [f"{name} imports {m}" for m in _imports(name, tree, path.name == "__init__.py")
                  if m.startswith(TRAINING)]
    assert not wrong, wrong


def test_both_tracks_train_on_the_engine():
    for name, _, tree in _modules():
        if name in TRAINING[:2]:
            assert "trafficfm.engine" in _imports(name, tree), name


def test_no_default_dictionaries():
    """A default lives in config.yaml only: no module-level DEFAULT_* in the package."""
    found = [f"{name}: {t.id}" for name, _, tree in _modules() for node in tree.body
             if isinstance(node, (ast.Assign, ast.AnnAssign))
             for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
             if isinstance(t, ast.Name) and t.id.startswith("DEFAULT")]
    assert not found, found
