"""tools/core_size.py: its columns add up to what `wc -l` counts, and each kind of line lands in its column."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("core_size", ROOT / "tools" / "core_size.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_kind_of_line_is_counted_once(tmp_path):
    source = tmp_path / "m.py"
    source.write_text('"""Doc.\n\nMore doc."""\n\n# why\nx = 1  # not a comment line\n\n\ndef f():\n'
                      '    """One line."""\n    return x\n')
    assert _tool().count(source) == {"lines": 11, "blank": 3, "comment": 1, "docstring": 4, "code": 3}


def test_the_columns_add_up_for_every_core_module():
    tool = _tool()
    for path in (ROOT / "zoo").rglob("*.py"):
        c = tool.count(path)
        assert c["lines"] == len(path.read_text().splitlines()) == sum(c[k] for k in ("blank", "comment", "docstring", "code"))
