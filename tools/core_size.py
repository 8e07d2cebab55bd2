"""The size of the core, per module: `python tools/core_size.py [PACKAGE_DIR]` (default: zoo/).

Four counts per file: all lines (what `wc -l` counts), blank lines, comment-only lines, docstring lines, and
what is left, the code. The code column is the floor of the line count: no re-wrapping of comments or
docstrings brings a file below it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def count(path: Path) -> dict[str, int]:
    """Lines, blank, comment, docstring and code lines of one Python file."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    blank = sum(1 for i, line in enumerate(lines, 1) if not line.strip() and i not in docstrings)
    comment = sum(1 for i, line in enumerate(lines, 1) if line.strip().startswith("#") and i not in docstrings)
    doc = len(docstrings)
    return {"lines": len(lines), "blank": blank, "comment": comment, "docstring": doc,
            "code": len(lines) - blank - comment - doc}


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "zoo")
    rows = sorted(((str(p.relative_to(root.parent)), count(p)) for p in root.rglob("*.py")),
                  key=lambda row: -row[1]["lines"])
    keys = ("lines", "blank", "comment", "docstring", "code")
    print(f"| module | {' | '.join(keys)} |\n|---|{'---:|' * len(keys)}")
    for name, c in rows:
        print(f"| {name} | {' | '.join(f'{c[k]:,}' for k in keys)} |")
    print(f"| **total** | {' | '.join(f'{sum(c[k] for _, c in rows):,}' for k in keys)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
