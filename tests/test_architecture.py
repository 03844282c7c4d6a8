"""The package's structure, as docs/design.md describes it.

- layers -> ops -> native: nothing under ``keras_norms/native/`` imports
  from the rest of the package (it is reached through
  `keras_norms.native.dispatch` only);
- no import cycle between the package's modules (imports inside functions
  included);
- only ``keras_norms/native/`` asks which backend runs.
"""

import ast
import pathlib

import keras_norms

ROOT = pathlib.Path(keras_norms.__file__).parent


def _module_name(path):
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path):
    """Modules of the package that ``path`` imports (any nesting)."""
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative
                base = module.split(".")
                base = base[: len(base) - node.level + is_package]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            # `from keras_norms import ops` imports the submodule `ops`
            # (its parent package is not an edge: it is being imported).
            for alias in node.names:
                candidate = f"{name}.{alias.name}"
                imported.add(candidate if candidate in MODULES else name)
    return {
        name
        for name in imported
        if name.startswith("keras_norms") and name != "keras_norms"
    }


FILES = sorted(ROOT.rglob("*.py"))
MODULES = {_module_name(path) for path in FILES}
GRAPH = {_module_name(path): _imports(path) for path in FILES}


def test_native_imports_nothing_else_of_the_package():
    for module, imported in GRAPH.items():
        if module.startswith("keras_norms.native"):
            outside = {
                m for m in imported if not m.startswith("keras_norms.native")
            }
            assert not outside, f"{module} imports {sorted(outside)}"


def test_no_import_cycle():
    state = {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(GRAPH.get(module, ())):
            if state.get(target) == "open":
                cycle = path[path.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_only_native_asks_which_backend_runs():
    for path in FILES:
        if _module_name(path).startswith("keras_norms.native"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "backend"
            ):
                raise AssertionError(
                    f"{path.relative_to(ROOT.parent)}:{node.lineno} calls "
                    "backend.backend(); use keras_norms.native.dispatch"
                )
