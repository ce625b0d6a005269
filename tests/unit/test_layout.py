"""The import rules that keep the layout readable from the door.

- `schemas/` is the contract: it imports nothing of mailroom's but itself, and `import schemas` loads
  pydantic alone of the third-party packages.
- `runtime/` is how any worker runs: it imports `schemas/` and itself, never a worker or a way in.
- A worker imports `schemas/`, `runtime/` and itself, never another worker.
- `mailroom/` (the command line) and `admin/` (the web admin) may use a worker's pure modules, never its I/O
  edge; nothing but the entry (`mailroom/cli.py`) imports `admin/`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKERS = ("ingest", "matcher", "converter", "responder")
OURS = ("schemas", "runtime", "mailroom", "admin", "deploy", *WORKERS)
IO_EDGES = {"app", "imap", "smtp", "kafka", "delivery"}
"""Modules of a worker that talk to servers: only the worker itself uses them. (The command line starts a
worker through its entry, `<worker>.main` or the stream worker `create_worker` it looks up by name.)"""


def _imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute names), wherever in the file the import stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _ours(names: set[str]) -> set[str]:
    return {name for name in names if name.split(".")[0] in OURS}


@pytest.mark.parametrize("package", ["schemas", "runtime", *WORKERS, "mailroom", "admin"])
def test_the_package_has_modules(package: str) -> None:
    assert _modules(package), package


def test_schemas_imports_only_itself() -> None:
    for path in _modules("schemas"):
        others = {name for name in _ours(_imports(path)) if not name.startswith("schemas")}
        assert not others, f"{path.relative_to(ROOT)} imports {sorted(others)}"


def test_runtime_imports_no_worker_and_no_way_in() -> None:
    for path in _modules("runtime"):
        wrong = {n for n in _ours(_imports(path)) if n.split(".")[0] not in ("schemas", "runtime")}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


@pytest.mark.parametrize("worker", WORKERS)
def test_a_worker_imports_no_other_worker(worker: str) -> None:
    for path in _modules(worker):
        wrong = {n for n in _ours(_imports(path)) if n.split(".")[0] not in ("schemas", "runtime", worker)}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


@pytest.mark.parametrize("way_in", ["mailroom", "admin"])
def test_a_way_in_uses_no_io_edge_of_a_worker(way_in: str) -> None:
    for path in _modules(way_in):
        edges = {
            name
            for name in _imports(path)
            if name.split(".")[0] in WORKERS and len(name.split(".")) > 1 and name.split(".")[1] in IO_EDGES
        }
        assert not edges, f"{path.relative_to(ROOT)} imports {sorted(edges)}"


def test_only_the_entry_imports_the_web_admin() -> None:
    for package in ("schemas", "runtime", *WORKERS, "mailroom"):
        for path in _modules(package):
            if path == ROOT / "mailroom" / "cli.py":
                continue
            found = {n for n in _imports(path) if n.split(".")[0] == "admin"}
            assert not found, f"{path.relative_to(ROOT)} imports {sorted(found)}"


def test_importing_the_contract_loads_pydantic_alone() -> None:
    probe = (
        "import sys, schemas, schemas.contract\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    third_party = {m for m in done.stdout.split() if not m.startswith("_")} - {"schemas"}
    assert third_party <= {
        "pydantic",
        "pydantic_core",
        "typing_extensions",
        "annotated_types",
        "typing_inspection",
    }, third_party
