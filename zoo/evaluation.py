"""`zoo eval NAME`: generated music against held-out test data, side by side, plus the plugin's own numbers.

The test split comes from the plugin's registered dataset builder, not from a Trainer,
so a plugin that only ships weights gets a test column too; zoo.metrics and Model.music_metrics measure both
sides the same way. A Trainer is built only when it has its own evaluate(), whose Metrics add rows.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import fields

import numpy as np
import pretty_midi

from zoo import metrics as M
from zoo.errors import ConfigError, PluginError


def _evaluating_trainer(model, data, num: int):
    """The plugin's Trainer with its default config, only when it has its own evaluate() to add rows; else None."""
    from zoo.config import config_from_dict
    from zoo.errors import UnknownNameError
    from zoo.registry import get_registry
    from zoo.train import Trainer

    try:
        cls = get_registry().trainer(model.arch)
    except UnknownNameError:   # a plugin that only ships weights
        return None
    if cls.evaluate is Trainer.evaluate:
        return None
    values = dict(cls.defaults)
    if "eval_samples" in {f.name for f in fields(cls.config_class)}:
        values["eval_samples"] = num   # a plugin that generates in its own evaluate() uses the same N
    return cls(model, config_from_dict(cls.config_class, values), source=data, device=model.device)


def held_out_pieces(model, dataset, num: int) -> list:
    """Up to `num` evenly spaced items of the test split as PrettyMIDI (decoded by the model's tokenizer, if any)."""
    n = len(dataset)
    items = [dataset[int(i)] for i in np.unique(np.linspace(0, n - 1, min(num, n)).round().astype(int))]
    if model.tokenizer is not None:
        return [model.tokenizer.decode(item) for item in items]
    odd = next((item for item in items if not isinstance(item, pretty_midi.PrettyMIDI)), None)
    if odd is not None:
        raise PluginError(f"{model.arch}: its test items are {type(odd).__name__}, not PrettyMIDI, and it has no "
                          f"tokenizer to decode them; give the architecture a tokenizer (tokenizer_name) or a dataset "
                          f"builder whose items are PrettyMIDI")
    return items


def run_data(name: str) -> str | None:
    """The --data a run was trained on, when `name` is a run's final/ folder (read from the run's run.json)."""
    import json
    from pathlib import Path

    run_json = Path(name).parent / "run.json"
    if not Path(name).is_dir() or not run_json.is_file() or run_json.stat().st_size > 1_000_000:
        return None
    try:
        data = json.loads(run_json.read_text()).get("data")
    except (OSError, ValueError, AttributeError):
        return None
    return data if isinstance(data, str) else None


def evaluate(name: str, num: int = 256, data: str | None = None, device="auto", seed: int = 0,
             batch_size: int = 32, **options) -> dict:
    """{"model", "arch", "samples", "test_pieces", "table": {metric: {"generated", "test"}}, "scores": {name: value}}
    for `num` pieces generated with the model's generate `options`, beside its test split."""
    import torch

    from zoo.limits import MAX_BATCH, MAX_EVAL_NUM, check_int, check_num
    from zoo.loader import load
    from zoo.progress import status
    from zoo.registry import get_registry

    check_num(num, "--num", MAX_EVAL_NUM)
    check_int(batch_size, "--batch-size", 1, MAX_BATCH)
    if data is None:
        data = run_data(name)
    print(f"zoo: evaluating on {'--data ' + data if data else 'the plugin’s embedded test split'}"
          f"{' (the data this run was trained on)' if data and data == run_data(name) else ''}", file=sys.stderr)
    with status(f"loading {name}"):
        model = load(name, device=device)
    model.check_options(options)
    trainer = _evaluating_trainer(model, data, num)
    if trainer is not None:
        trainer.generate_options = dict(options)   # a trainer's evaluate() that generates decodes as asked
    with status("loading the test split"):   # --data's (None: the plugin's own)
        builder = get_registry().dataset_builder(model.arch)
        dataset = None if builder is None else builder(data, "test", model)
        if dataset is None and trainer is not None:   # an older plugin whose data is only in its trainer
            dataset = trainer.build_dataset(data, "test")
    if dataset is None:   # no test split: the generated column only
        if data is not None:
            raise ConfigError(f"the {model.arch} plugin has no test split (it registers no dataset builder), "
                              f"so it cannot read --data")
        dataset = []
    plugin = M.Metrics()
    if trainer is not None:
        with status("the plugin's evaluation"), torch.no_grad():
            plugin = trainer.evaluate(dataset)
        if not isinstance(plugin, Mapping):
            raise PluginError(f"Trainer.evaluate() returned {type(plugin).__name__}; it must return a "
                              f"zoo.metrics.Metrics")
        if not isinstance(plugin, M.Metrics):   # an older plugin's plain mapping of scores
            plugin = M.Metrics(scores=dict(plugin))
    with status(f"generating {num} piece(s)"):   # in batches, seeds seed, seed+1, … per batch
        generated = [piece for b, start in enumerate(range(0, num, batch_size))
                     for piece in model.generate(num=min(batch_size, num - start), seed=seed + b, **options)]
    with status("decoding the test split"):
        real = held_out_pieces(model, dataset, num)
    gen_m = {**M.midi_metrics(generated), **model.music_metrics(generated)}
    test_m = {**M.midi_metrics(real), **model.music_metrics(real)} if real else {}
    table = {k: {"generated": gen_m[k], "test": test_m.get(k, float("nan"))} for k in gen_m}
    table.update({k: {"generated": float(g), "test": float(t)} for k, (g, t) in plugin.paired.items()})
    scores = {} if plugin.nll is None else {"nll": float(plugin.nll)}
    scores.update({key: float(value) for key, value in plugin.scores.items()})
    if plugin.nll is not None:
        scores["nll_bits"] = M.nll_to_bits(plugin.nll)
    return {"model": name, "arch": model.arch, "samples": len(generated), "test_pieces": len(real),
            "table": table, "scores": scores}


def flat(results: dict) -> dict:
    """One JSON object of name -> number (what `zoo push --metrics` reads): gen_X, test_X and the scores."""
    out = {"samples": results["samples"], "test_pieces": results["test_pieces"]}
    for k, row in results["table"].items():
        out[f"gen_{k}"] = row["generated"]
        out[f"test_{k}"] = row["test"]
    out.update(results["scores"])
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def format_table(results: dict) -> str:
    """The side-by-side table `zoo eval` prints."""

    def fmt(v):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"

    rows = [(k, fmt(r["generated"]), fmt(r["test"])) for k, r in results["table"].items()]
    rows += [(k, "", fmt(v)) for k, v in results["scores"].items()]
    w = max([len("metric")] + [len(r[0]) for r in rows])
    head = (f"{results['model']} ({results['arch']}): {results['samples']} generated pieces, "
            f"{results['test_pieces']} test pieces")
    lines = [head, "", f"{'metric':<{w}}  {'generated':>10}  {'test':>10}", f"{'-' * w}  {'-' * 10}  {'-' * 10}"]
    lines += [f"{k:<{w}}  {g:>10}  {t:>10}" for k, g, t in rows]
    if results["scores"]:
        lines.append("")
        lines.append("rows without a generated value are the plugin's scores on the test split "
                     "(nll: nats per token; nll_bits: bits per token)" if "nll" in results["scores"]
                     else "rows without a generated value are the plugin's scores")
    return "\n".join(lines)
