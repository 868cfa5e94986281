"""The layout is the architecture: the reading half and the shared modules never import the measuring half or
torch. Checked statically over every import statement (including ones inside functions), so an import that a run
would only reach on a rare path is caught too; ``test_cli`` checks the same at run time for the read-only commands.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "npucheck"
SHARED = [
    "__init__.py",
    "model.py",
    "store.py",
    "atomic.py",
    "targets.py",
    "datasheets.py",
    "stats.py",
    "errors.py",
    "fleetfile.py",
    "signals.py",
    "evidence.py",
    "summary.py",
    "bandwidth.py",
]
MEASURING = ("torch", "npucheck.measure", "npucheck.kernels")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _reading_side() -> list[Path]:
    return sorted((PACKAGE / "read").glob("*.py")) + [PACKAGE / name for name in SHARED]


@pytest.mark.parametrize("path", _reading_side(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_reading_side_never_imports_the_measuring_side(path):
    bad = [n for n in _imports(path) if n.split(".")[0] == "torch" or n.startswith(MEASURING[1:])]
    assert not bad, f"{path.name} imports {bad}"


def test_every_module_is_on_one_side():
    top = {p.name for p in PACKAGE.glob("*.py")}
    # cli.py is the one place that reaches both halves (lazily, per command); __main__.py only calls it
    assert top - set(SHARED) == {"cli.py", "__main__.py"}


def test_the_check_catches_an_import_inside_a_function(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def f():\n    from npucheck.measure import runner\n    import torch.cuda\n")
    assert "npucheck.measure.runner" in _imports(sneaky) and "torch.cuda" in _imports(sneaky)
