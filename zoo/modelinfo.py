"""What `zoo info` tells about a model folder without building the model: parameters, file sizes, the card's
metrics, the generate options (what a timm or Hugging Face user looks for on a model page)."""

from __future__ import annotations

import re
from pathlib import Path

from zoo.checkpoint import MODEL_FILE_PATTERNS

# card sections whose tables are metrics: "## Metrics: generated vs test", "## Results (NLL per token ...)"
MAX_CARD_BYTES = 1 << 20   # real cards are a few kB; the metric tables come early
_METRIC_HEADINGS = re.compile(r"^#{2,4}\s*(metrics|results|evaluation)\b", re.IGNORECASE)


def folder_facts(folder) -> dict:
    """Parameters per safetensors file (from its header: no tensor is read), file sizes and the card's metrics."""
    from zoo.build import safetensors_header

    folder = Path(folder)
    files, parameters = {}, {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and any(path.match(p) for p in MODEL_FILE_PATTERNS):
            files[path.name] = path.stat().st_size
            if path.suffix == ".safetensors":
                parameters[path.stem] = sum(_numel(shape) for _, shape in safetensors_header(path).values())
    total = sum(files.values())
    card = folder / "README.md"
    metrics = {}
    if card.is_file():   # a card far larger than any real one (or than memory) is read up to MAX_CARD_BYTES only
        from zoo.safeio import read_bytes

        metrics = card_metrics(read_bytes(card, MAX_CARD_BYTES, "model card", prefix=True).decode("utf-8", "replace"))
    # "model" is what generate() uses; other state files (a GAN's critic) are for training and are listed apart
    return {"parameters": parameters.get("model", sum(parameters.values())), "parameters_by_file": parameters,
            "size": human_bytes(total), "size_bytes": total, "file_sizes": files, "metrics": metrics}


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


def generate_options(arch_cls) -> list:
    """The options generate() takes besides num and seed, with defaults and ranges where the plugin declares them."""
    return [o.to_dict() if hasattr(o, "to_dict") else {"name": o} for o in getattr(arch_cls, "generate_options", ())]


def human_bytes(n: int) -> str:
    """1234567 -> '1.2 MB'."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
