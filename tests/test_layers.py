"""The core's import layers and its lack of cycles, as pyproject.toml's [tool.importlinter] declares them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_are_kept():
    """Layers lowest first: files, registry, hub, loader, tasks, cli; no module imports a layer above its own."""
    lint = Path(sys.executable).parent / "lint-imports"   # import-linter, from the dev extra
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


def test_function_level_imports_count():
    """grimp, which import-linter uses, sees an import made inside a function body: a late import that crossed
    a layer would be reported like any other."""
    import grimp

    graph = grimp.build_graph("zoo")
    # zoo.model imports zoo.loader only inside save_pretrained/from_pretrained
    assert graph.direct_import_exists(importer="zoo.model", imported="zoo.loader")
    assert not graph.direct_import_exists(importer="zoo.registry", imported="zoo.hub")
    assert not graph.direct_import_exists(importer="zoo.checkpoint", imported="zoo.build")
