"""The `performance` tokenizer: the Music Transformer book's 388-event vocabulary.

Token ids (vocab_size 390):

    0..127    NOTE_ON  pitch
    128..255  NOTE_OFF pitch
    256..355  TIME_SHIFT (v - 255) * 10 ms; gaps of 1 s or more are runs of maximum shifts
    356..387  VELOCITY bin (velocity // 4); emitted only when the bin changes
    388       EOS
    389       PAD

Encoding merges every pitched instrument, drops drum tracks, and lets the sustain
pedal (CC64 >= 64) extend note ends. Time is quantised to 10 ms. Decoding accepts any
sequence of in-range ids: unmatched note-offs are ignored, a note-on of a sounding
pitch re-strikes it, open notes are closed at the end, PAD is skipped and EOS ends.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from zoo.errors import MidiError
from zoo.tokenizer import Tokenizer

NOTE_ON = 0
NOTE_OFF = 128
TIME_SHIFT = 256
VELOCITY = 356
EOS = 388
PAD = 389
VOCAB_SIZE = 390

N_SHIFTS = 100  # 10 ms .. 1 s
N_VELOCITY_BINS = 32
STEPS_PER_SECOND = 100  # 10 ms resolution
SUSTAIN_CC = 64
MAX_SECONDS = 24 * 3600  # longer pieces are refused: a hostile tempo/delta can claim years of silence


def velocity_bin(velocity: int) -> int:
    """Bin a MIDI velocity (0..127) into one of 32 bins, as the book does."""
    return min(max(int(velocity), 0), 127) // 4


def bin_velocity(b: int) -> int:
    """The velocity a decoded note gets for bin b: the middle of the bin (never 0)."""
    return b * 4 + 2


def apply_sustain(notes: np.ndarray, pedal: list[tuple[float, float]]) -> np.ndarray:
    """Extend note ends while the pedal is down: a note released under the pedal
    sounds until the pedal lifts (or the same pitch is struck again)."""
    if not pedal or len(notes) == 0:
        return notes
    notes = notes.copy()
    downs = np.array([p[0] for p in pedal])
    ups = np.array([p[1] for p in pedal])
    # index of the last pedal-down at or before each note end
    idx = np.searchsorted(downs, notes[:, 1], side="right") - 1
    held = (idx >= 0) & (notes[:, 1] < ups[np.maximum(idx, 0)])
    notes[held, 1] = ups[idx[held]]
    return notes


def pedal_intervals(controls: list[tuple[float, int]], end_time: float) -> list[tuple[float, float]]:
    """(time, value) CC64 events -> sorted (down, up) intervals."""
    out, down = [], None
    for t, v in sorted(controls):
        if v >= 64 and down is None:
            down = t
        elif v < 64 and down is not None:
            out.append((down, t))
            down = None
    if down is not None:
        out.append((down, max(end_time, down)))
    return out


def notes_to_tokens(notes: np.ndarray) -> np.ndarray:
    """Note array of rows (start_s, end_s, pitch, velocity) -> token ids (int64).

    Times are rounded to 10 ms; every note lasts at least one step; a note of a pitch
    that is still sounding is cut where the next one starts (the vocabulary cannot
    express two overlapping notes of one pitch).
    """
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    if len(notes) == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.isfinite(notes[:, :2]).all() or notes[:, :2].max() > MAX_SECONDS:
        # each second of silence costs a token: a 68-byte file can claim 10^9 s (hang, then OOM)
        raise MidiError(f"the piece lasts {notes[:, :2].max() / 3600:.3g} hours; pieces longer than "
                        f"{MAX_SECONDS // 3600} hours are refused (is the MIDI file corrupt?)")
    start = np.round(notes[:, 0] * STEPS_PER_SECOND).astype(np.int64)
    end = np.round(notes[:, 1] * STEPS_PER_SECOND).astype(np.int64)
    pitch = notes[:, 2].astype(np.int64)
    vel = notes[:, 3].astype(np.int64)
    keep = (pitch >= 0) & (pitch < 128)
    start, end, pitch, vel = start[keep], end[keep], pitch[keep], vel[keep]
    start = np.maximum(start, 0)
    end = np.maximum(end, start + 1)

    # resolve same-pitch overlaps: sort by (pitch, start), cut each note at the next start
    order = np.lexsort((end, start, pitch))  # longest last: it survives a duplicate onset
    start, end, pitch, vel = start[order], end[order], pitch[order], vel[order]
    same = pitch[1:] == pitch[:-1]
    nxt = np.where(same, start[1:], np.iinfo(np.int64).max)
    end[:-1] = np.minimum(end[:-1], nxt)
    keep = end > start  # a duplicate onset of the same pitch leaves one note
    start, end, pitch, vel = start[keep], end[keep], pitch[keep], vel[keep]

    # events: (time, kind, pitch, velocity); kind 0 = off (first at equal times), 1 = on
    n = len(start)
    times = np.concatenate([end, start])
    kinds = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
    pitches = np.concatenate([pitch, pitch])
    vels = np.concatenate([vel, vel])
    order = np.lexsort((pitches, kinds, times))
    times, kinds, pitches, vels = times[order], kinds[order], pitches[order], vels[order]

    # Vectorised emission (a Python loop here was the bottleneck of preparing a MIDI folder).
    # Each event becomes: its run of time shifts, a velocity token if the bin changed, the event.
    gaps = np.diff(times, prepend=0)
    n_shift = -(-gaps // N_SHIFTS)  # ceil: full 1 s shifts, then the remainder
    on = kinds == 1
    bins = np.clip(vels, 0, 127) // 4
    vel_flag = np.zeros(len(times), dtype=np.int64)
    on_bins = bins[on]
    vel_flag[on] = np.concatenate([[True], on_bins[1:] != on_bins[:-1]]) if len(on_bins) else []
    count = n_shift + vel_flag + 1
    start = np.cumsum(count) - count
    out = np.empty(int(count.sum()), dtype=np.int64)
    ev = np.repeat(np.arange(len(times)), n_shift)
    within = np.arange(len(ev)) - np.repeat(np.cumsum(n_shift) - n_shift, n_shift)
    last = within == n_shift[ev] - 1
    out[start[ev] + within] = np.where(last, TIME_SHIFT + gaps[ev] - N_SHIFTS * (n_shift[ev] - 1) - 1,
                                       TIME_SHIFT + N_SHIFTS - 1)
    flagged = vel_flag == 1
    out[start[flagged] + n_shift[flagged]] = VELOCITY + bins[flagged]
    out[start + n_shift + vel_flag] = np.where(on, NOTE_ON + pitches, NOTE_OFF + pitches)
    return out


def tokens_to_notes(tokens) -> np.ndarray:
    """Token ids -> note array (start_s, end_s, pitch, velocity); never fails on in-range ids."""
    ids = np.asarray(tokens, dtype=np.int64).reshape(-1)
    if len(ids) and (ids.min() < 0 or ids.max() >= VOCAB_SIZE):
        raise MidiError(f"token ids must lie in 0..{VOCAB_SIZE - 1}; got {ids.min()}..{ids.max()}")
    now, vel = 0, bin_velocity(16)
    open_: dict[int, tuple[int, int]] = {}
    notes: list[tuple[int, int, int, int]] = []
    for tok in ids.tolist():
        if tok < NOTE_OFF:
            if tok in open_:  # re-strike: close the sounding note first
                s, v = open_.pop(tok)
                notes.append((s, max(now, s + 1), tok, v))
            open_[tok] = (now, vel)
        elif tok < TIME_SHIFT:
            p = tok - NOTE_OFF
            if p in open_:  # an unmatched note-off is ignored
                s, v = open_.pop(p)
                notes.append((s, max(now, s + 1), p, v))
        elif tok < VELOCITY:
            now += tok - TIME_SHIFT + 1
        elif tok < EOS:
            vel = bin_velocity(tok - VELOCITY)
        elif tok == EOS:
            break
        # PAD: skipped
    for p, (s, v) in open_.items():
        notes.append((s, max(now, s + 1), p, v))
    if not notes:
        return np.zeros((0, 4), dtype=np.float64)
    arr = np.asarray(sorted(notes), dtype=np.float64)
    arr[:, :2] /= STEPS_PER_SECOND
    return arr


def midi_to_notes(midi: pretty_midi.PrettyMIDI) -> np.ndarray:
    """Merge every pitched instrument of a PrettyMIDI (sustain applied) into a note array."""
    end_time = midi.get_end_time()
    parts = []
    for inst in midi.instruments:
        if inst.is_drum or not inst.notes:
            continue
        arr = np.array([(n.start, n.end, n.pitch, n.velocity) for n in inst.notes], dtype=np.float64)
        cc = [(c.time, c.value) for c in inst.control_changes if c.number == SUSTAIN_CC]
        parts.append(apply_sustain(arr, pedal_intervals(cc, end_time)))
    if not parts:
        return np.zeros((0, 4), dtype=np.float64)
    return np.concatenate(parts)


def notes_to_midi(notes: np.ndarray, program: int = 0) -> pretty_midi.PrettyMIDI:
    """Note array -> PrettyMIDI with one instrument (piano by default)."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=program, name="music-transformer")
    for s, e, p, v in np.asarray(notes).reshape(-1, 4).tolist():
        inst.notes.append(pretty_midi.Note(velocity=int(v), pitch=int(p), start=float(s), end=float(e)))
    midi.instruments.append(inst)
    return midi


def read_midi_notes(path: str | os.PathLike) -> np.ndarray:
    """Read a MIDI file straight into a merged note array (symusic if installed, else pretty_midi)."""
    from zoo.midi import check_midi_file, read_midi

    check_midi_file(path)  # size, header and event-count limits before any parser runs
    try:
        return _read_symusic(path)
    except ImportError:
        pass
    return midi_to_notes(read_midi(path))


def _read_symusic(path) -> np.ndarray:
    import symusic  # optional, several times faster than pretty_midi

    try:
        score = symusic.Score(str(path), ttype="second")
    except Exception as exc:
        raise MidiError(f"cannot read MIDI file {path}: {exc}") from exc
    end_time = score.end()
    parts = []
    for track in score.tracks:
        if track.is_drum or len(track.notes) == 0:
            continue
        n = track.notes.numpy()
        arr = np.stack([n["time"], n["time"] + n["duration"], n["pitch"], n["velocity"]], axis=1).astype(np.float64)
        cc = [(c.time, c.value) for c in track.controls if c.number == SUSTAIN_CC]
        parts.append(apply_sustain(arr, pedal_intervals(cc, end_time)))
    if not parts:
        return np.zeros((0, 4), dtype=np.float64)
    return np.concatenate(parts)


class PerformanceTokenizer(Tokenizer):
    """MIDI <-> the book's 390-token performance-event sequence."""

    name = "performance"
    vocab_size = VOCAB_SIZE
    pad_id = PAD
    eos_id = EOS

    def __init__(self) -> None:
        pass

    def encode(self, midi) -> torch.Tensor:
        """PrettyMIDI (or a path to a MIDI file) -> 1-D int64 tensor of token ids (no EOS)."""
        if isinstance(midi, (str, os.PathLike)):
            try:
                return torch.from_numpy(notes_to_tokens(read_midi_notes(Path(midi))))
            except MidiError as exc:
                raise MidiError(str(exc) if str(midi) in str(exc) else f"{midi}: {exc}") from None
        return torch.from_numpy(notes_to_tokens(midi_to_notes(midi)))

    def decode(self, tokens) -> pretty_midi.PrettyMIDI:
        """Token ids (tensor, array or list; any in-range ids) -> PrettyMIDI."""
        if isinstance(tokens, torch.Tensor):
            tokens = tokens.detach().cpu().numpy()
        return notes_to_midi(tokens_to_notes(tokens))

    def to_dict(self) -> dict:
        """JSON params (the vocabulary is fixed, so there are none)."""
        return {}
