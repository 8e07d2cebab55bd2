"""MIDI around the Music Transformer: the prompt in, pieces out (generate() of model.py calls `pieces`).

model.py samples tokens; this module turns a prompt (a MIDI path, a PrettyMIDI or token ids) into the ids it
continues, decides how to decode (compiled, int8), shows progress, and turns the tokens back into pieces:
the stuck-note guard, and the prompt's tempo and metre copied onto each piece.
"""

from __future__ import annotations

import copy
import math
import os
import sys

import numpy as np
import pretty_midi
import torch

from zoo.errors import ConfigError
from zoo.limits import check_sampling
from zoo.progress import bar

from .tokenizer import VELOCITY


def pieces(model, num: int, seed: int | None, prompt, length: int, temperature: float, top_k: int | None,
           top_p: float | None, allow_eos: bool, include_prompt: bool, max_note_s: float | None,
           compile: bool | None, quantize: str) -> list[pretty_midi.PrettyMIDI]:
    """MusicTransformer.generate's work (see its docstring). zoo.model's wrapper of generate() has checked num,
    seed and the declared options' ranges already; what no declaration says is checked here."""
    check_sampling(temperature, top_k, top_p)   # the zoo's documented ranges (1e-40 overflowed the logits)
    for name, value in (("allow_eos", allow_eos), ("include_prompt", include_prompt), ("compile", compile)):
        if not isinstance(value, bool) and not (name == "compile" and value is None):   # "x" is true: a typo was taken silently
            raise ConfigError(f"{name} must be True or False{' or None (decide per run)' if name == 'compile' else ''}, "
                              f"got {value!r}")
    if max_note_s is not None and (isinstance(max_note_s, bool) or not isinstance(max_note_s, (int, float))
                                   or not 0 < max_note_s < math.inf):   # nan passed every comparison
        raise ConfigError(f"max_note_s must be a positive number of seconds or None, got {max_note_s!r}")
    ids = prompt_ids(model, prompt)
    compile, quantize = decoding(model, num, length, compile, quantize)
    generator = None
    if seed is not None:   # piece k draws from its own CPU generator seeded seed + k: it can be re-made alone
        generator = [torch.Generator().manual_seed(int(seed) + k) for k in range(num)]
    context = ids[-(model.config.block_size - 1):]  # what the model sees
    # a thousand tokens take a while on a CPU: a bar on a terminal, nothing in a pipe or a log; made at the first
    # token, so that it does not stand at 0 while the weights are quantized or the step compiles
    progress = []

    def on_token():
        if not progress:
            progress.append(bar(total=length, desc="tokens", unit="token"))
        progress[0].update(1)

    was_training = model.training
    model.eval()
    try:
        new = model.generate_tokens(context[None].expand(num, -1), length, temperature, top_k, top_p, generator,
                                    allow_eos=allow_eos, compile=compile, quantize=quantize, on_token=on_token)
    finally:
        model.train(was_training)
        for p in progress:
            p.close()
    full = torch.cat([ids[None].expand(num, -1).to(new.device), new], 1) if include_prompt else new
    midis = [model.tokenizer.decode(row.cpu()) for row in full]
    if max_note_s is not None:  # a small model sometimes never ends a note: it would sound to the end
        for midi in midis:
            for note in midi.instruments[0].notes:
                note.end = min(note.end, note.start + max_note_s)
    timing = prompt_midi(prompt)
    if timing is not None:   # the events are in seconds: the prompt's tempo and metre are kept as metadata
        from zoo.midi import last_note_end

        at = None if include_prompt else last_note_end(timing)   # continuation-only: as the prompt ends
        for midi in midis:
            copy_timing(timing, midi, at=at)
    return midis


def prompt_ids(model, prompt) -> torch.Tensor:
    """A prompt (MIDI path, PrettyMIDI, or token ids) -> 1-D ids without PAD/EOS."""
    if prompt is None:
        # No BOS in the book's vocabulary: start as nearly every piece starts, with a velocity (mf).
        return torch.tensor([VELOCITY + 20], dtype=torch.long)
    if isinstance(prompt, (str, os.PathLike, pretty_midi.PrettyMIDI)):
        ids = model.tokenizer.encode(prompt)
    else:
        try:
            ids = torch.as_tensor(prompt).reshape(-1).cpu()
        except (TypeError, ValueError, RuntimeError):
            ids = None
        # token ids are whole numbers: a float tensor was cut to integers without a word
        if ids is None or ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
            raise ConfigError(f"prompt must be a MIDI file, a PrettyMIDI or integer token ids, got "
                              f"{type(prompt).__name__}{f' of {ids.dtype}' if ids is not None else ''}")
        ids = ids.long()
        if len(ids) and (ids.min() < 0 or ids.max() >= model.config.vocab_size):
            raise ConfigError(f"prompt token ids must lie in 0..{model.config.vocab_size - 1}")
    ids = ids[(ids != model.config.pad_id) & (ids != model.config.eos_id)]
    if len(ids) == 0:
        raise ConfigError("the prompt has no notes or events; give a MIDI file with notes, or no prompt")
    return ids


def decoding(model, batch: int, length: int, compile: bool | None, quantize: str) -> tuple[bool, str]:
    """generate()'s compile and quantize made definite: None / "auto" are decided here from the CPU, the
    batch and the length (decode.compile_pays, quantize.choose), and what was decided is said in one line."""
    from .decode import compile_pays, decode_dtype
    from .quantize import choose, say_once

    weights = next(model.parameters()).dtype
    reasons = []
    if compile is None:   # int8 (asked for, or auto's choice without compiling) decodes eagerly
        int8 = quantize != "none" and choose(quantize, model.device, weights, False)[0] == "int8"
        compile, why = compile_pays(model, batch, length, int8)
        reasons.append(why)
    precision, why = choose(quantize, model.device, weights, compile)
    if quantize == "auto":
        reasons.append(why)
    reasons = [r for r in reasons if r]
    if reasons:
        hints = [h for h, on in (("--quantize none: exact fp32", quantize == "auto" and precision == "int8"),
                                 ("--compile: compile anyway", not compile and precision != "int8"),
                                 ("--no-compile: never", compile)) if on]
        dtype = "int8" if precision == "int8" else "fp32"
        if compile and decode_dtype(model.device) == torch.bfloat16:
            dtype = "bf16"
        say_once(f"music-transformer: decoding {dtype}, {'compiled' if compile else 'not compiled'}: "
                 f"{'; '.join(reasons)} ({', '.join(hints)})")
    return compile, precision


def prompt_midi(prompt) -> pretty_midi.PrettyMIDI | None:
    """The prompt as a PrettyMIDI for its tempo and time signatures (None for token ids or no prompt); says on
    stderr, in one line, when several tracks were merged into one piano track (the tokenizer knows one)."""
    if isinstance(prompt, (str, os.PathLike)):
        from zoo.midi import read_midi

        prompt = read_midi(prompt)
    elif not isinstance(prompt, pretty_midi.PrettyMIDI):
        return None
    pitched = [i for i in prompt.instruments if i.notes and not i.is_drum]
    drums = [i for i in prompt.instruments if i.notes and i.is_drum]
    if len(pitched) > 1 or drums:
        merged = f"its {len(pitched)} pitched tracks were merged into one piano track" if len(pitched) > 1 else ""
        dropped = f"{len(drums)} drum track{'s' if len(drums) > 1 else ''} dropped" if drums else ""
        print(f"zoo: the prompt has {len(pitched) + len(drums)} tracks: "
              f"{'; '.join(filter(None, [merged, dropped]))} (the Music Transformer plays one piano part)",
              file=sys.stderr)
    return prompt


def copy_timing(source, target, at: float | None = None) -> None:
    """Give `target` (a PrettyMIDI whose note times are seconds) the tempo map, resolution, time signatures and
    key signatures of `source`, so a continuation plays and reads like its prompt (pretty_midi starts every new
    file at 120 bpm in 4/4). Note times stay where they are in seconds; only their ticks and beats change.
    at: `target` starts where `source` is at `at` seconds (a continuation without its prompt): it gets the
    tempo, time signature and key in effect there, from time 0."""
    target.resolution = source.resolution
    if at is None:
        # pretty_midi has no public setter for tempo changes: its tick scales are the tempo map it writes
        target._tick_scales = list(source._tick_scales)
        target.time_signature_changes = copy.deepcopy(source.time_signature_changes)
        target.key_signature_changes = copy.deepcopy(source.key_signature_changes)
    else:
        times, tempi = source.get_tempo_changes()
        bpm = tempi[max(int(np.searchsorted(times, at, side="right")) - 1, 0)] if len(tempi) else 120.0
        target._tick_scales = [(0, 60.0 / (float(bpm) * source.resolution))]
        metre = [t for t in source.time_signature_changes if t.time <= at][-1:]
        key = [k for k in source.key_signature_changes if k.time <= at][-1:]
        target.time_signature_changes = [pretty_midi.TimeSignature(t.numerator, t.denominator, 0.0) for t in metre]
        target.key_signature_changes = [pretty_midi.KeySignature(k.key_number, 0.0) for k in key]
    target._update_tick_to_time(target._tick_scales[-1][0])   # later times extrapolate the last tempo
