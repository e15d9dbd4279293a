"""Imports point one way (DESIGN.md "Who owns what"); this test reads them with ast."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cti", "ivr", "acd", "screen_pop", "recordings", "crm_core")
LOW_LEVEL_CTI = ("cti.ami", "cti.agi", "cti.calls", "cti.bus", "cti.sim", "cti.settings",
                 "cti.domain", "cti.dialplan")

ALLOWED: dict[str, tuple[str, ...]] = {
    "crm_core": ("crm_core",),
    "cti.low": ("cti", "crm_core"),  # low-level cti: cti low-level parts and crm_core only
    "ivr": ("ivr", "crm_core", *LOW_LEVEL_CTI),
    "acd": ("acd", "crm_core", *LOW_LEVEL_CTI),
    "recordings": ("recordings", "crm_core", *LOW_LEVEL_CTI),
    "screen_pop": ("screen_pop", "crm_core", "acd", *LOW_LEVEL_CTI),
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in PACKAGES:  # from cti import dialplan -> cti.dialplan
                out.update(f"{node.module}.{a.name}" for a in node.names)
            else:
                out.add(node.module)
    return {m for m in out if m.split(".")[0] in PACKAGES}


def kind_of(module: str) -> str | None:
    top = module.split(".")[0]
    if top == "cti":
        if module in ("cti.app", "cti.cli", "cti.cli_customers", "cti.__main__"):
            return None  # the composition root (and the CLI around it) may import everything
        return "cti.low"
    return top


def test_imports_point_one_way() -> None:
    bad: list[str] = []
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            kind = kind_of(module)
            for imp in imports_of(path):
                if imp in ("cti.app", "cti.cli") and module not in ("cti.cli", "cti.__main__", "cti.cli_customers"):
                    bad.append(f"{module} imports the composition root {imp}")
                    continue
                if kind is None:
                    continue
                allowed = ALLOWED[kind]
                if kind == "cti.low":
                    ok = imp.startswith(LOW_LEVEL_CTI) or imp == "cti" or imp.startswith("crm_core")
                else:
                    ok = any(imp == a or imp.startswith(a + ".") for a in allowed)
                if not ok:
                    bad.append(f"{module} imports {imp}")
    assert not bad, "\n".join(bad)
