"""Imports point one way (docs/architecture.md, "Import floors"); this test reads them with ast.

Every import counts: at module level, inside functions and under ``TYPE_CHECKING``. There is no list of
exceptions: a module that needs something from a floor above it must get it through a ``typing.Protocol``
or a domain event instead.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The sans-I/O parts of cti the simulator may use (framing, quoting, the contract's names).
CTI_CORES = ("cti.ami.protocol", "cti.agi.protocol", "cti.agi.errors", "cti.dialplan")

# package -> the packages it may import (itself always).
FLOORS: dict[str, tuple[str, ...]] = {
    "crm_core": (),
    "cti": (),
    "ivr": ("cti", "crm_core"),
    "acd": ("cti", "crm_core"),
    "recordings": ("cti", "crm_core"),
    "screen_pop": ("ivr", "acd", "recordings", "cti", "crm_core"),
    "simulator": CTI_CORES,
    "callcenter": ("screen_pop", "ivr", "acd", "recordings", "cti", "crm_core", "simulator"),
}
PACKAGES = tuple(FLOORS)


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path) -> Iterator[str]:
    """Every module of ours that ``path`` imports, resolved to a module name (``from x import y`` gives
    ``x.y`` when ``x.y`` is a module of ours, else ``x``)."""
    module = module_name(path)
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node, module, path.name == "__init__.py")
            names = [f"{base}.{a.name}" if is_module(f"{base}.{a.name}") else base for a in node.names]
        else:
            continue
        yield from (n for n in names if n.split(".")[0] in PACKAGES)


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def our_modules() -> Iterator[tuple[str, Path]]:
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            yield module_name(path), path


def test_every_package_is_known() -> None:
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert on_disk == set(FLOORS), "a new top-level package needs its floor in FLOORS and docs/architecture.md"


def test_imports_point_one_way() -> None:
    bad: list[str] = []
    for module, path in our_modules():
        pkg = module.split(".")[0]
        allowed = (pkg, *FLOORS[pkg])
        bad.extend(f"{module} imports {imp}" for imp in imports_of(path)
                   if not any(imp == a or imp.startswith(a + ".") for a in allowed))
    assert not bad, "\n".join(bad)


def test_no_import_cycles() -> None:
    """Modules import each other in one direction only, inside each package as well as across them."""
    graph: dict[str, set[str]] = {}
    for module, path in our_modules():
        # A module importing its own package's __init__ (which re-exports it) is not counted.
        graph[module] = {i for i in imports_of(path) if i != module and not module.startswith(i + ".")}
    cycles: list[str] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(cycles)


def test_nothing_imports_the_composition_root() -> None:
    bad = [f"{m} imports {i}" for m, p in our_modules() if not m.startswith("callcenter")
           for i in imports_of(p) if i.startswith("callcenter")]
    assert not bad, "\n".join(bad)


def test_only_the_root_and_tests_use_the_simulator() -> None:
    users = {m.split(".")[0] for m, p in our_modules() for i in imports_of(p) if i.startswith("simulator")}
    assert users <= {"simulator", "callcenter"}, users
