"""The science and storage layers never import dagster (DESIGN §1)."""

import ast
import subprocess
import sys
from pathlib import Path

import regnet_assets

PACKAGE = Path(regnet_assets.__file__).parent
PURE = ["science", "storage"]


def test_no_dagster_import_in_the_science_source():
    offenders = []
    for layer in PURE:
        for path in (PACKAGE / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "dagster"]
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
