"""The package's house rules, read from its own source: imports only go down a floor, no import circles, no
import hidden inside a function, rooms of a readable size. See CONTRIBUTING.md for the floors."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "skillopt_action"

# Bottom to top. A module may import modules on its own floor or below, never above; within a floor the
# imports must not form a circle. Sub-package members inherit their package's floor unless listed.
FLOORS: list[set[str]] = [
    {"types", "errors"},
    {"text", "fmt", "procs", "redact", "yamlfile", "render", "workspace", "diff", "markdown", "terminal", "gate", "sequential",
     "throttle", "cache",
     "targets.base", "scorers.base"},
    {"config", "config_schema", "providers", "tasks", "calls", "edits", "package", "reflect", "screen", "evidence",
     "scorers", "targets", "ask", "description"},
    {"rollout", "runtime", "report", "evaluation", "factorial", "search", "ablation", "transfer", "drift", "loop",
     "shard", "triggering", "epoch_memory"},
    {"api", ""},  # "" is the package itself (skillopt_action/__init__.py re-exports the API)
    {"cli", "cli_args", "init", "github", "__main__"},
]
# Imports inside functions are allowed only for optional dependencies that may not be installed.
LAZY_OK = {"llama_cpp"}
MAX_LINES = 500


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def floor_of(mod: str) -> int:
    probe = mod
    while True:
        for i, names in enumerate(FLOORS):
            if probe in names and (probe or not mod):  # "" (the package itself) is no fallback for its modules
                return i
        if not probe:
            raise AssertionError(f"module {mod!r} has no floor: add it to FLOORS in {__file__} and CONTRIBUTING.md")
        probe = probe.rpartition(".")[0]


def imports_of(mod: str) -> list[tuple[str, int, bool]]:
    """(imported package module, line, inside a function) for every import of a package module in `mod`."""
    path = MODULES[mod]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".") if package else []
                    base = base[: len(base) - (child.level - 1)] if child.level > 1 else base
                    target = ".".join(base + ([child.module] if child.module else []))
                elif (child.module or "").startswith("skillopt_action"):
                    target = child.module.removeprefix("skillopt_action").lstrip(".")
                else:
                    if in_function and (child.module or "").split(".")[0] not in LAZY_OK:
                        found.append((f"<external {child.module}>", child.lineno, True))
                    continue
                names = [f"{target}.{a.name}".lstrip(".") for a in child.names]
                subs = [n for n in names if n in MODULES]
                for t in subs or [target]:
                    found.append((t, child.lineno, in_function))
            elif isinstance(child, ast.Import):
                for a in child.names:
                    if a.name.startswith("skillopt_action"):
                        found.append((a.name.removeprefix("skillopt_action").lstrip("."), child.lineno, in_function))
                    elif in_function and a.name.split(".")[0] not in LAZY_OK:
                        found.append((f"<external {a.name}>", child.lineno, True))
            visit(child, nested)

    visit(tree, False)
    return found


GRAPH = {m: {t for t, _, _ in imports_of(m) if t in MODULES and t != m} for m in MODULES}


def test_every_module_has_a_floor_and_imports_only_go_down():
    upward = []
    for mod in MODULES:
        for target, line, _ in imports_of(mod):
            if target in MODULES and floor_of(target) > floor_of(mod):
                upward.append(f"{MODULES[mod].relative_to(PKG.parent)}:{line}: {mod or 'skillopt_action'} (floor "
                              f"{floor_of(mod)}) imports {target} (floor {floor_of(target)})")
    assert not upward, "imports that go up a floor:\n" + "\n".join(upward)


def test_no_import_circles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            strongconnect(v)
    assert not circles, f"import circles: {circles}"


def test_no_imports_hidden_inside_functions():
    hidden = [f"{MODULES[m].relative_to(PKG.parent)}:{line}: {t}" for m in MODULES
              for t, line, inside in imports_of(m) if inside]
    assert not hidden, "imports inside functions (move them to the top; a circle means a layering problem):\n" + \
        "\n".join(hidden)


def test_rooms_are_of_a_readable_size():
    big = []
    for path in MODULES.values():
        n = len(path.read_text(encoding="utf-8").splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if n > MAX_LINES and "longer than 500 lines because" not in doc.lower():
            big.append(f"{path.relative_to(PKG.parent)}: {n} lines")
    assert not big, f"modules over {MAX_LINES} lines without the reason in their docstring: {big}"


@pytest.mark.parametrize("order", ["bottom-up", "top-down"])
def test_every_module_imports_on_its_own_in_a_fresh_interpreter(order):
    """Each module imports cleanly first thing in a fresh interpreter, whichever end one starts from."""
    mods = sorted(MODULES, key=floor_of, reverse=order == "top-down")
    names = ["skillopt_action" + (f".{m}" if m else "") for m in mods if m != "__main__" and not m.endswith("__main__")]
    code = ("import importlib, sys\nfor n in sys.argv[1:]:\n"
            "    for k in [k for k in sys.modules if k.startswith('skillopt_action')]:\n"
            "        del sys.modules[k]\n"
            "    importlib.import_module(n)\n")
    r = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
