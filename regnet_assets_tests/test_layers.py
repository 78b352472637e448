"""The layers import one way only: science → storage → defs → operations → cli (DESIGN §1).

Each layer may import the layers before it and never one after it; the science and storage
never import dagster, so they run in a notebook without it.
"""

import ast
import subprocess
import sys
from pathlib import Path

import regnet_assets

PACKAGE = Path(regnet_assets.__file__).parent
PURE = ["science", "storage"]
# What each part of regnet_assets may import from regnet_assets (besides itself).
ALLOWED = {
    "atomic": set(),
    "science": {"atomic"},
    "storage": {"atomic", "science"},
    "defs": {"atomic", "science", "storage"},
    "operations": {"atomic", "science", "storage", "defs"},
    "cli": {"atomic", "science", "storage", "defs", "operations"},
    "definitions": {"defs"},  # the module workspace.yaml loads
    "__init__": {"storage"},  # load_gene_model
}


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names.append(node.module or "")
    return names


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else Path(parts[0]).stem


def test_no_dagster_import_in_the_science_source():
    offenders = []
    for layer in PURE:
        for path in (PACKAGE / layer).rglob("*.py"):
            offenders += [f"{path.name}: {n}" for n in _imports(path) if n.split(".")[0] == "dagster"]
    assert offenders == []


def test_each_layer_imports_only_the_layers_below_it():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer(path)
        assert layer in ALLOWED, f"{path}: a new part of regnet_assets; add it to ALLOWED"
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "regnet_assets" and len(parts) > 1 and parts[1] != layer:
                if parts[1] not in ALLOWED[layer]:
                    offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []


def test_science_modules_import_with_dagster_unavailable():
    modules = [
        ".".join(("regnet_assets",) + p.relative_to(PACKAGE).with_suffix("").parts)
        for layer in PURE
        for p in sorted((PACKAGE / layer).rglob("*.py"))
    ]
    code = "import sys; sys.modules['dagster'] = None\n" + "\n".join(f"import {m}" for m in modules)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
