"""Model cards (README.md): the one builder behind every card the zoo writes (train, release, save_pretrained,
convert, push). YAML metadata (huggingface_hub's ModelCardData) over the standard sections; a plugin only adds
sections (Trainer.card_sections) and metadata (Model.card_metadata)."""

from __future__ import annotations

import inspect
import json
import math

from zoo.metrics import Metrics

LIBRARY = "musezoo"
TAGS = ("music-generation", "symbolic-music", "midi")
# a plugin section with one of these titles adds to the standard section; any other title is a section of its own
STANDARD = ("Data", "Training", "Metrics", "Limitations")


def metadata(arch: str, base=None, *, license: str | None = None, tags=(), datasets=(), scores: dict | None = None,
             name: str | None = None):
    """The YAML front matter as a ModelCardData, merged over `base` (an existing card's): the zoo's library name
    and tags, a known license, datasets, and `scores` (name -> number) as metrics and model-index."""
    from huggingface_hub import EvalResult, ModelCardData

    data = base if base is not None else ModelCardData()
    data.library_name = LIBRARY
    data.tags = list(dict.fromkeys([*(data.tags or []), *TAGS, arch, *tags]))
    if license and license != "unknown":
        data.license = license
    if datasets:
        data.datasets = list(dict.fromkeys([*(data.datasets or []), *datasets]))
    scores = {k: v for k, v in (scores or {}).items() if _finite(v)}
    if scores:
        data.metrics = list(dict.fromkeys([*(data.metrics or []), *scores]))
        data.model_name = name or data.model_name or arch
        dataset = next(iter(datasets), None)
        data.eval_results = [EvalResult(
            task_type="music-generation", task_name="Symbolic music generation",
            dataset_type=dataset or "custom", dataset_name=dataset or "held-out test split",
            metric_type=k, metric_name=k, metric_value=v) for k, v in scores.items()]
    return data


def parse(text: str | None):
    """An existing card as (ModelCardData, markdown body); a card without front matter has empty metadata."""
    from huggingface_hub import ModelCard, ModelCardData

    if text and text.lstrip().startswith("---"):
        card = ModelCard(text, ignore_metadata_errors=True)
        return (card.data if card.data is not None else ModelCardData()), card.text
    return ModelCardData(), text or ""


def render(data, body: str) -> str:
    """Front matter and body as one README.md, checked by huggingface_hub's ModelCard."""
    from huggingface_hub import ModelCard

    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body.lstrip(chr(10))}"))


def build_card(model, summary: dict | None = None, sections: dict[str, str] | None = None,
               meta: dict | None = None, notes: str | None = None) -> str:
    """The README.md of a saved model from training's `summary` (None: nothing recorded), `sections` (title ->
    markdown; a standard title adds to that section), the plugin's `meta` and the maintainer's `notes`."""
    summary, sections, meta = summary or {}, dict(sections or {}), dict(meta or {})
    arch = model.arch
    test = Metrics.from_flat(summary.get("test_metrics") or {})
    scores = {f"test_{k}": v for k, v in _unpaired(test).items() if _finite(v)}
    # the plugin's license holds for models trained on its embedded data only; --data is under what that data allows
    embedded = bool(summary) and summary.get("data") in (None, "", "embedded default")
    data = metadata(arch, license=meta.get("license") if embedded else None, tags=meta.get("tags", ()),
                    datasets=meta.get("datasets", ()), scores=scores)
    if summary:
        texts = ["The plugin's embedded default data." if embedded
                 else f"`{summary['data']}` (the folder or file given to `zoo train --data`).",
                 _training_text(summary), _metrics_text(summary, test),
                 "It knows only the music of its training data, and it was judged by the metrics above, not by "
                 "listeners. Generated pieces may repeat passages of that data."]
    else:
        texts = ["Not recorded with this checkpoint.", "No training details were recorded with this checkpoint.",
                 "Nothing was measured.", "Its training is unknown: judge its output before relying on it."]
    extra = {title: sections.pop(title) for title in STANDARD if title in sections}
    title = f"# {arch} trained with musezoo" if summary else f"# {arch} model"
    parts = [title, _description(model), _model_facts(model)]
    for heading, text in zip(STANDARD, texts):
        if heading == "Limitations":   # the plugin's own sections come between Metrics and Limitations
            parts += [f"## {t}\n\n{own.strip()}" for t, own in sections.items()]
        parts += [f"## {heading}\n\n{text}", extra.get(heading)]
    parts += [_config_text(model, summary), notes]
    body = "\n\n".join(p.strip() for p in parts if p and p.strip()) + "\n"
    return render(data, body)


def _description(model) -> str:
    """What the model is, in its class's words: the first paragraph of the Model subclass's docstring."""
    doc = inspect.getdoc(type(model)) or ""
    if type(model).__doc__ is None or not doc:   # inherited from zoo.Model: says nothing about this one
        return f"A `{model.arch}` model for musezoo."
    return doc.split("\n\n")[0].replace("\n", " ")


def _model_facts(model) -> str:
    from zoo.version import __version__

    counts = {stem: sum(p.numel() for p in m.parameters()) for stem, m in model.state_files().items()}
    total = sum(counts.values())
    per_file = f" ({', '.join(f'`{s}.safetensors` {n:,}' for s, n in counts.items())})" if len(counts) > 1 else ""
    return (f"- Architecture: `{model.arch}` (arch_version {model.arch_version}), {total:,} parameters{per_file}\n"
            f"- Saved with musezoo {__version__}")


def _training_text(summary: dict) -> str:
    tc = summary.get("train_config", {})
    return "\n".join([
        f"- Steps: {summary['steps']} (batch {tc.get('batch_size', '?')}, {summary.get('world_size', 1)} process(es))",
        f"- Hardware: {summary.get('hardware', 'not recorded')}",
        f"- Precision: {summary.get('precision', 'fp32')}",
        f"- Training time: {summary.get('train_time_s', 0)} s"])


def _unpaired(test: Metrics) -> dict[str, float]:
    """A split's numbers that are not generated-vs-data pairs: the NLL first, then the scores."""
    return {**({} if test.nll is None else {"nll": test.nll}), **test.scores}


def _metrics_text(summary: dict, test: Metrics) -> str:
    """Generated vs test data for evaluate()'s pairs (as in `zoo eval`), then the last training step's logs
    (train_X, valid_X) and the test split's other numbers (test_X)."""
    out = []
    if test.paired:
        rows = "\n".join(f"| {p} | {_fmt(g)} | {_fmt(d)} |" for p, (g, d) in test.paired.items())
        out.append("Pieces generated by this model beside the held-out test split, measured the same way:"
                   f"\n\n| metric | generated | test data |\n| --- | ---: | ---: |\n{rows}")
    values = {(k if k.startswith("valid_") else f"train_{k}"): v for k, v in (summary.get("last") or {}).items()
              if k != "lr"}
    values.update({f"test_{k}": v for k, v in _unpaired(test).items()})
    if values:
        rows = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in values.items())
        out.append(f"| metric | value |\n| --- | ---: |\n{rows}")
    return "\n\n".join(out) or "No metrics were logged."


def _config_text(model, summary: dict) -> str:
    from zoo.config import to_dict

    text = f"## Config\n\n```json\n{json.dumps(summary.get('model_config') or to_dict(model.config), indent=2)}\n```"
    if summary.get("train_config"):
        text += f"\n\nTraining config:\n\n```json\n{json.dumps(summary['train_config'], indent=2)}\n```"
    return text


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(v) -> str:
    if isinstance(v, float) and math.isfinite(v):
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)
