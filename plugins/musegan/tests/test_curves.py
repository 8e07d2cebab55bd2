"""tools/curves.py: the validation rows of runs, in step order, as a table and a picture."""

import importlib.util
import json
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "curves.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("musegan_curves", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(folder: Path) -> Path:
    folder.mkdir()
    rows = [{"step": 200, "valid_release_score": 2.5, "valid_gen_rest_rate_B": 0.4, "valid_gen_parallels_per_100": 5.0},
            {"step": 150, "critic_loss": -3.0},   # a training log row: no validation, not in the table
            {"step": 100, "valid_release_score": 1.5, "valid_gen_rest_rate_B": 0.2, "valid_gen_parallels_per_100": 6.0}]
    # the last line cut short, as a killed run leaves it
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 300, "valid_rel')
    return folder


def test_table_has_the_validations_in_step_order(tmp_path):
    tool = load_tool()
    rows = tool.evaluations(write_run(tmp_path / "run-a"))
    assert [r["step"] for r in rows] == [100, 200]
    lines = tool.table({"run-a": rows}).splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| run-a | 100 | 1.500 |") and "| 0.200 |" in lines[2]
    assert lines[3].startswith("| run-a | 200 | 2.500 |")


def test_picture_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    tool = load_tool()
    out = tmp_path / "curves.png"
    tool.picture({"run-a": tool.evaluations(write_run(tmp_path / "run-a"))}, out, shipped=1.8)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
