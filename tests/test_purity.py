"""colorize_core is the pure library: it must not pull in orchestration, tracking or storage."""

import ast
import subprocess
import sys
from pathlib import Path

FORBIDDEN = {"prefect", "mlflow", "dask", "distributed", "s3fs", "fsspec"}
CORE = Path(__file__).resolve().parents[1] / "colorize_core"


def test_no_forbidden_imports_in_source():
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders


def test_importing_the_core_loads_none_of_them():
    mods = ",".join(sorted(FORBIDDEN))
    code = (
        "import sys, pkgutil, importlib, colorize_core\n"
        "for m in pkgutil.iter_modules(colorize_core.__path__):\n"
        "    importlib.import_module('colorize_core.' + m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in set('{mods}'.split(','))]\n"
        "print(bad); assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
