"""The package's layers, read from the code's own imports: each module imports only its own layer and those below it,
module-level imports form no cycle, and the front doors that predict never reach training code.

A new sub-package must be given its place in LAYERS; the first test says so when one is missing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "neuraltab"

# the lowest layer first; a module may import its own layer and any layer before it
LAYERS: list[set[str]] = [
    {"errors", "system", "metrics"},
    {"config", "artifacts"},
    {"data"},
    {"device"},
    {"networks"},
    {"train", "export"},  # export sits beside training, below the api whose Model.to_onnx calls it
    {"api"},
    {"estimators", "serve", "report", "playground"},
    {"cli", "__main__"},  # `python -m neuraltab` (and torchrun -m neuraltab) runs the command
]
# the one call up a layer, made inside the method only: Model.report is the report's Python front door (issue 16)
ALLOWED_UP = {("neuraltab.api", "neuraltab.report")}
# these predict from a saved model and must work without the training code loaded
NEVER_TRAIN = {"serve", "export", "report"}


def _group(module: str) -> str:
    """'neuraltab.data.read' -> 'data'; the package's own __init__ is 'neuraltab'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "neuraltab"


def _rank(group: str) -> int:
    for i, layer in enumerate(LAYERS):
        if group in layer:
            return i
    raise KeyError(group)


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = set(_modules())


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, path: Path) -> list[tuple[str, bool]]:
    """(imported neuraltab module, whether at module level outside TYPE_CHECKING) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                continue  # annotations only: no import at run time
            if isinstance(child, ast.Import):
                found.extend((a.name, top) for a in child.names if a.name.split(".")[0] == "neuraltab")
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    name = ".".join(base + ([child.module] if child.module else []))
                else:
                    name = child.module or ""
                if name.split(".")[0] != "neuraltab":
                    continue
                for alias in child.names:
                    if f"{name}.{alias.name}" in MODULES:  # `from . import api` imports the module neuraltab.api
                        found.append((f"{name}.{alias.name}", top))
                    elif not (name == "neuraltab" and alias.name == "__version__"):
                        # the face's one constant is free; its other names load the layers above lazily
                        found.append((name, top))
            nested = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, top and not nested)

    visit(tree, True)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, list[tuple[str, bool]]]:
    return {module: _imports(module, path) for module, path in _modules().items()}


def test_every_sub_package_has_a_layer(graph):
    missing = sorted({_group(m) for m in graph} - {"neuraltab"} - set().union(*LAYERS))
    assert not missing, f"give {missing} a place in LAYERS (tests/test_layout.py)"


def test_imports_never_run_up_a_layer(graph):
    upward = []
    for module, imports in graph.items():
        if _group(module) == "neuraltab":
            continue  # the package's face hands every public name on, lazily
        for target, _ in imports:
            group = _group(target)
            if (module, target) in ALLOWED_UP:
                continue
            if group != "neuraltab" and _rank(group) > _rank(_group(module)):
                upward.append(f"{module} -> {target}")
            elif group == "neuraltab" and target == "neuraltab" and module != "neuraltab":
                upward.append(f"{module} -> neuraltab (import the module that defines the name)")
    assert not upward, upward


def test_module_level_imports_form_no_cycle(graph):
    modules = set(graph)

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges = {m: sorted({owner(t) for t, top in imports if top and owner(t) not in (None, m)})
             for m, imports in graph.items()}
    # a package's __init__ importing its own submodules is how it hands names on, not a cycle of design
    edges = {m: [t for t in ts if not (t.startswith(m + ".") or m.startswith(t + "."))] for m, ts in edges.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in edges.get(m, []):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (cycle := walk(t)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (cycle := walk(m)):
            pytest.fail(" -> ".join(cycle))


def test_front_doors_that_predict_never_import_training(graph):
    bad = [f"{m} -> {t}" for m, imports in graph.items() if _group(m) in NEVER_TRAIN
           for t, _ in imports if _group(t) == "train"]
    assert not bad, bad


def test_the_checker_sees_a_real_upward_import(tmp_path):
    """The rules bite: an import of training from data is reported."""
    fake = tmp_path / "neuraltab" / "data"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("from ..train import loop\n")
    imports = _imports("neuraltab.data.bad", fake / "bad.py")
    assert imports == [("neuraltab.train.loop", True)]
    assert _rank(_group(imports[0][0])) > _rank("data")
