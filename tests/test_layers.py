"""The package's layers import one way only, and only the run layer imports Ray (fast: reads the source, runs nothing).

Every `import` and `from ... import` in tuner/ is checked, lazy ones inside functions included; imports under
`if TYPE_CHECKING:` are checked too, so type hints cannot hide an upward dependency either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tuner"

# Lowest first: a module may import its own layer and those before it.
LAYERS = ("core", "learn", "search", "results", "inference", "run", "cli")
RAY_LAYER = "run"


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "tuner" and parts[1] in LAYERS else None


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, relative ones resolved."""
    tree = ast.parse(source if source is not None else path.read_text(), filename=str(path))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.append((node.lineno, base))
            # `from tuner.results import record` may name a module, not an attribute.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if base.startswith("tuner")]
    return found


def _upward(path: Path, source: str | None = None) -> list[str]:
    own = _layer(_module_name(path))
    if own is None:  # tuner/__init__.py and __main__.py sit above every layer
        return []
    return [
        f"line {line}: {module}"
        for line, module in _imports(path, source)
        if _layer(module) is not None and LAYERS.index(_layer(module)) > LAYERS.index(own)
    ]


def _ray_outside_run(path: Path, source: str | None = None) -> list[str]:
    if _layer(_module_name(path)) == RAY_LAYER:
        return []
    return [f"line {line}: {m}" for line, m in _imports(path, source) if m == "ray" or m.startswith("ray.")]


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_layer():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert not loose, f"modules outside the layers: {loose}; put each in one of {LAYERS}"
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_only(path):
    assert not _upward(path), f"{_layer(_module_name(path))} imports a later layer: {_upward(path)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_run_layer_imports_ray(path):
    assert not _ray_outside_run(path), f"Ray imported outside tuner/{RAY_LAYER}/: {_ray_outside_run(path)}"


def test_no_import_cycle_between_modules():
    """Module-level graph, lazy imports included: a cycle would make the order of first use matter."""
    names = {_module_name(p): p for p in MODULES}
    graph = {
        name: {m for _, m in _imports(path) if m in names and m != name and not name.startswith(m + ".")}
        for name, path in names.items()
    }
    # Importing a package runs its __init__: an edge to a package's module implies one to the package.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_the_checker_sees_what_it_forbids():
    """The checks can fail: a learn module importing the run layer and Ray, lazily, is caught."""
    source = "def f():\n    from tuner.run import sweep\n    import ray.tune\n    from ..run.cluster import connect\n"
    probe = PACKAGE / "learn" / "probe.py"  # never written: only its name places it in the learn layer
    assert _upward(probe, source) == [
        "line 2: tuner.run",
        "line 2: tuner.run.sweep",
        "line 4: tuner.run.cluster",
        "line 4: tuner.run.cluster.connect",
    ]
    assert _ray_outside_run(probe, source) == ["line 3: ray.tune"]
