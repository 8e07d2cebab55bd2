"""What `zoo info` tells about a model folder without building the model: parameters, file sizes, the card's
metrics, the generate options (what a timm or Hugging Face user looks for on a model page)."""

from __future__ import annotations

import math
import re
from pathlib import Path

from zoo.checkpoint import MODEL_FILE_PATTERNS

MAX_CARD_BYTES = 1 << 20   # real cards are a few kB; the metric tables come early
# card sections whose tables are metrics: "## Metrics: generated vs test", "## Results (NLL per token ...)"
_METRIC_HEADINGS = re.compile(r"^#{2,4}\s*(metrics|results|evaluation)\b", re.IGNORECASE)


def folder_facts(folder) -> dict:
    """Parameters per state file (no tensor is read), file sizes and the card's metrics."""
    from zoo.build import safetensors_header

    folder = Path(folder)
    files = {path.name: path.stat().st_size for path in sorted(folder.iterdir())
             if path.is_file() and any(path.match(p) for p in MODEL_FILE_PATTERNS)}
    parameters = _parameters_by_file(folder)
    if not parameters:   # not buildable (a plugin missing): the tensors in the files' headers are counted
        parameters = {Path(name).stem: sum(math.prod(shape) for _, shape in safetensors_header(folder / name).values())
                      for name in files if name.endswith(".safetensors")}
    total = sum(files.values())
    card = folder / "README.md"
    metrics = {}
    if card.is_file():   # a card far larger than any real one (or than memory) is read up to MAX_CARD_BYTES only
        from zoo.safeio import read_bytes

        metrics = card_metrics(read_bytes(card, MAX_CARD_BYTES, "model card", prefix=True).decode("utf-8", "replace"))
    # all state files, as Model.num_parameters() and the model card count them; "model" is what generate() uses,
    # other state files (a GAN's critic) are for training: parameters_by_file tells them apart
    return {"parameters": sum(parameters.values()), "parameters_by_file": parameters,
            "size": human_bytes(total), "size_bytes": total, "file_sizes": files, "metrics": metrics}


def _parameters_by_file(folder: Path) -> dict[str, int] | None:
    """Parameters per state file as Model.num_parameters() counts them (no buffers), built on the meta device;
    None when the folder cannot be built."""
    from zoo.build import check_against_weights
    from zoo.errors import ZooError
    from zoo.loader import read_folder

    try:
        saved = read_folder(folder)
        model = check_against_weights(saved.cls, saved.config, saved.tokenizer, folder, saved.cls.optional_state_files)
    except (ZooError, KeyError, TypeError):
        return None
    return {stem: sum(p.numel() for p in module.parameters()) for stem, module in sorted(model.state_files().items())
            if (folder / f"{stem}.safetensors").is_file()}


def card_metrics(text: str) -> dict:
    """The metric tables of a model card: {section heading: {row name: {column: value}}}."""
    out, heading, lines = {}, None, text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("#"):
            heading = line.lstrip("#").strip() if _METRIC_HEADINGS.match(line) else None
        elif line.startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|[\s:|-]+\|?", lines[i + 1].strip()):
            header = _cells(line)
            rows, i = {}, i + 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = _cells(lines[i])
                rows[cells[0]] = dict(zip(header[1:], cells[1:]))
                i += 1
            if heading or header[0].lower() == "metric":   # a metric table, not the data or training tables
                out.setdefault(heading or "metrics", {}).update(rows)   # a section may hold several tables
            continue
        i += 1
    return out


# rows of a card's metric table that the training log repeats (last training and validation values): in
# --json, left out of the table
_LOG_ROWS = ("train_", "valid_")
MAX_TABLE_ROWS = 24


def format_info(facts: dict) -> str:
    """`zoo info` as a person reads it: what the model is, its size, how to generate, and its card's metrics."""
    kind = facts["kind"] if facts["kind"] == "architecture" else f"{facts['kind']}, architecture {facts['arch']}"
    lines = [f"{facts['name']}  ({kind})"]
    rows = [(key, facts.get(key)) for key in ("description", "license", "data", "plugin", "class", "local_path")]
    if facts.get("hub_repo"):
        rows.append(("hub", facts["hub_repo"] + (f" @ {facts['revision']}" if facts.get("revision") else "")))
    if "parameters" in facts:
        sizes = ", ".join(f"{k} {human_bytes(v)}" for k, v in facts["file_sizes"].items())
        rows += [("parameters", _parameters(facts)), ("size", f"{facts['size']} ({sizes})")]
    lines += [f"  {key:<12} {value}" for key, value in rows if value not in (None, "")]
    options = facts.get("generate_options")
    lines.append("generate options (besides --num, default 1, and --seed, default random):")
    if isinstance(options, str) or not options:   # the plugin's import error, or no option declared
        lines.append(f"  {options or 'none'}")
    for o in options if isinstance(options, list) else []:
        flag = o.get("flag", o["name"])
        if o.get("type") == "bool":   # --[no-]include-prompt, and the plugin's own switch
            switch = f"--[no-]{o['name'].replace('_', '-')}"
            flag = switch if flag.startswith("--" + o["name"].replace("_", "-")) else f"{switch}, {flag}"
        lines.append(f"  {flag:<20} {option_help(o)}")
    for section, defaults in (("model config defaults", facts.get("config_defaults")), ("training defaults (zoo "
                              "train; --set KEY=VALUE changes one)", facts.get("train_defaults"))):
        if defaults:
            lines.append(f"{section}:")
            lines += [f"  {k:<20} {v}" for k, v in defaults.items()]
    for heading, table in (facts.get("metrics") or {}).items():
        shown = {row: cells for row, cells in table.items() if not row.startswith(_LOG_ROWS)}
        hidden = len(table) - min(len(shown), MAX_TABLE_ROWS)
        if not shown:
            continue
        shown = dict(list(shown.items())[:MAX_TABLE_ROWS])
        columns = [c for c in dict.fromkeys(c for cells in shown.values() for c in cells)
                   if any(cells.get(c) for cells in shown.values())]
        grid = [["", *columns], *([row, *(cells.get(c, "") for c in columns)] for row, cells in shown.items())]
        widths = [max(len(r[i]) for r in grid) for i in range(len(columns) + 1)]
        lines.append(f"{heading} (from the model card):")
        lines += ["  " + " | ".join([f"{r[0]:<{widths[0]}}", *(f"{v:>{w}}" for v, w in zip(r[1:], widths[1:]))])
                  for r in grid]
        if hidden:
            lines.append(f"  ({hidden} more rows, the training log's among them: zoo info {facts['name']} --json)")
    return "\n".join(lines)


def option_help(o: dict) -> str:
    """A generate option's help (GenerateOption.to_dict()) with its default and range, for zoo info and --help."""
    text, default, lo, hi = o.get("help", ""), o.get("default"), o.get("min"), o.get("max")
    if default is not None and "default" not in text:
        text += f" (default {('on' if default else 'off') if o.get('type') == 'bool' else default})"
    if lo is not None or hi is not None:
        text += f"; range {'' if lo is None else f'{lo:g}'}..{'' if hi is None else f'{hi:g}'}"
    return text


def _parameters(facts: dict) -> str:
    """'711,623' or '711,623 in all state files: model 620,102 (what generate uses), critic 91,521'."""
    by_file = facts.get("parameters_by_file") or {}
    total = f"{facts['parameters']:,}"
    if len(by_file) < 2:
        return total
    parts = [f"{stem} {n:,}" + (" (what generate uses)" if stem == "model" else "") for stem, n in by_file.items()]
    return f"{total} in all state files: {', '.join(parts)}"


def human_bytes(n: int) -> str:
    """1234567 -> '1.2 MB'."""
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]
