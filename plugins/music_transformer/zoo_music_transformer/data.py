"""Training data for the Music Transformer: the music21 classical corpus or a MIDI folder.

Both sources become a `TokenCorpus`: every piece tokenized once (performance events,
EOS appended by the datasets), split deterministically by piece name into
train/valid/test (90/5/5 by a hash of the name), and cached as .npz + .json (no pickle)
under the user cache directory, keyed by DATA_VERSION, so later runs load in well under
a second.

Rendering a music21 score to performance events (`render_score`):
  * tempo comes from the score's metronome marks and tempo words (music21's
    `getSoundingMetronomeMark`); where a score has none, DEFAULT_QPM = 100 quarter notes
    per minute (a moderate chorale tempo) is used;
  * velocity comes from the part's dynamics (pp..ff, DYNAMIC_VELOCITY); before the first
    dynamic, or where there are none, DEFAULT_VELOCITY = 80 (mf);
  * ties are merged, grace notes dropped, repeats not expanded.

The first parse of the corpus (~1,900 pieces) takes about 10-15 minutes of CPU: it
runs in `workers` processes (default min(2, cores), env ZOO_DATA_WORKERS) and shows a
progress bar; `max_pieces` (env ZOO_MT_MAX_PIECES) caps the number of pieces.

`CropDataset` serves random crops of block_size+1 tokens, fresh every epoch, with pitch
transposition and time stretch (as in the Music Transformer paper); its randomness is a
function of (seed, epoch, index) only, so resumed runs see the same samples.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from zoo import data as zoo_data
from zoo.errors import DataError, MidiError

from .tokenizer import (EOS, N_SHIFTS, NOTE_OFF, PAD, TIME_SHIFT, VELOCITY, notes_to_tokens,
                        read_midi_notes)

DATA_VERSION = 1
DEFAULT_BPM = 80.0
DEFAULT_QPM = 100.0  # when there is no time signature either
DEFAULT_VELOCITY = 80
DYNAMIC_VELOCITY = {
    "pppp": 20, "ppp": 28, "pp": 40, "p": 52, "mp": 66, "mf": 80, "f": 96, "ff": 110, "fff": 120,
    "ffff": 126, "sf": 100, "sfz": 104, "sffz": 110, "fp": 96, "rf": 100, "rfz": 100, "fz": 104,
}
# music21 corpus folders used (scores only: no roman-numeral analyses, no folk-tune collections)
COMPOSERS = (
    "bach", "palestrina", "monteverdi", "beethoven", "mozart", "haydn", "handel", "schubert",
    "schumann_robert", "schumann_clara", "chopin", "corelli", "cpebach", "verdi", "weber",
    "josquin", "trecento", "ciconia", "luca", "lusitano", "joplin", "beach", "johnson_j_r",
    "liliuokalani", "schoenberg", "webern",
)
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc", ".mid", ".midi")
SPLITS = ("train", "valid", "test")


def cache_dir() -> Path:
    """Where tokenized corpora are cached: the music-transformer/ folder of musezoo's cache (zoo.data.cache_dir)."""
    return zoo_data.cache_dir("music-transformer")


def split_of(name: str) -> str:
    """Deterministic train/valid/test assignment of a piece by the sha1 of its name (90/5/5). These arguments
    decided which pieces music-transformer-classical never saw in training: keep them."""
    return zoo_data.split_of(name, valid=0.05, test=0.05, buckets=100, hash="sha1")


def assign_splits(names: list[str]) -> list[str]:
    """split_of for every piece; a small collection (3+ pieces) whose valid or test split came out
    empty lends it the train piece(s) with the lowest hash, so every split has data."""
    splits = [split_of(n) for n in names]
    for need in ("test", "valid"):
        if need not in splits and splits.count("train") >= 2:
            donor = min((i for i, s in enumerate(splits) if s == "train"), key=lambda i: zoo_data.stable_hash(names[i]))
            splits[donor] = need
    return splits


# --------------------------------------------------------------------------- corpus container


@dataclass
class TokenCorpus:
    """Tokenized pieces (no EOS) with their names and split."""

    names: list[str]
    tokens: list[np.ndarray]
    skipped: list[str] = field(default_factory=list)  # sources that could not be read

    def split(self, split: str) -> list[np.ndarray]:
        """The token arrays of one split."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        return [t for s, t in zip(assign_splits(self.names), self.tokens) if s == split]

    def stats(self) -> dict:
        """Pieces and tokens per split, and the number skipped."""
        out = {"skipped": len(self.skipped)}
        for s in SPLITS:
            pieces = self.split(s)
            out[s] = {"pieces": len(pieces), "tokens": int(sum(len(t) for t in pieces))}
        return out

    def save(self, path: Path) -> None:
        """Write path.npz (tokens) and path.json (names) atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        lengths = np.array([len(t) for t in self.tokens], dtype=np.int64)
        flat = np.concatenate(self.tokens).astype(np.int16) if self.tokens else np.zeros(0, np.int16)
        # temp names of their own ("x.tmp1" .with_suffix(".npz") was the final "x.npz": never atomic)
        tmp = {suffix: path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}") for suffix in (".npz", ".json")}
        try:
            with open(tmp[".npz"], "wb") as f:
                np.savez(f, tokens=flat, lengths=lengths)
            tmp[".json"].write_text(json.dumps(
                {"data_version": DATA_VERSION, "names": self.names, "skipped": self.skipped}))
            os.replace(tmp[".npz"], path.with_suffix(".npz"))
            os.replace(tmp[".json"], path.with_suffix(".json"))
        finally:   # a full or read-only disk leaves no temp files behind
            for name in tmp.values():
                name.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path) -> "TokenCorpus | None":
        """Read a cache written by save(); None if absent, stale or damaged."""
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            if meta.get("data_version") != DATA_VERSION:
                return None
            with np.load(path.with_suffix(".npz"), allow_pickle=False) as z:
                flat, lengths = z["tokens"].astype(np.int64), z["lengths"]
        except (OSError, ValueError, KeyError):
            return None
        if len(lengths) != len(meta["names"]) or lengths.sum() != len(flat):
            return None
        tokens = np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []
        return cls(meta["names"], list(tokens), meta.get("skipped", []))


# --------------------------------------------------------------------------- music21 rendering


def _tempo_map(score):
    """Breakpoints (offset in quarter notes, seconds) from the score's tempo marks."""
    from music21 import tempo

    marks = {}
    flat = score.flatten()
    for ti in flat.getElementsByClass(tempo.TempoIndication):
        try:
            qpm = ti.getSoundingMetronomeMark().getQuarterBPM()
        except Exception:  # a tempo word music21 cannot turn into a number
            continue
        off = float(ti.getOffsetBySite(flat))
        if qpm and qpm > 0 and off not in marks:  # parts repeat the same mark: first one wins
            marks[off] = float(qpm)
    if 0.0 not in marks:
        first = min(marks) if marks else None
        marks[0.0] = marks[first] if first is not None and first <= 1.0 else _default_qpm(flat)
    offs = sorted(marks)
    qpms = [marks[o] for o in offs]
    secs = [0.0]
    for i in range(1, len(offs)):
        secs.append(secs[-1] + (offs[i] - offs[i - 1]) * 60.0 / qpms[i - 1])
    return np.array(offs), np.array(secs), np.array(qpms)


def _default_qpm(flat) -> float:
    """DEFAULT_BPM beats of the first time signature, in quarter notes per minute."""
    from music21 import meter

    ts = flat.getElementsByClass(meter.TimeSignature).first()
    try:
        beat = float(ts.beatDuration.quarterLength) if ts is not None else 0.0
    except Exception:  # odd or additive meters
        beat = 0.0
    return DEFAULT_BPM * beat if beat > 0 else DEFAULT_QPM


def _to_seconds(ql, offs, secs, qpms):
    ql = np.asarray(ql, dtype=np.float64)
    i = np.searchsorted(offs, ql, side="right") - 1
    i = np.maximum(i, 0)
    return secs[i] + (ql - offs[i]) * 60.0 / qpms[i]


def render_score(score) -> np.ndarray:
    """A music21 Score -> note array (start_s, end_s, pitch, velocity), all parts merged."""
    from music21 import dynamics

    offs, secs, qpms = _tempo_map(score)
    rows = []  # (start_ql, end_ql, pitch, velocity)
    parts = list(score.parts) or [score]
    for part in parts:
        flat = part.flatten()
        dyn = sorted((float(d.offset), DYNAMIC_VELOCITY[d.value])
                     for d in flat.getElementsByClass(dynamics.Dynamic) if d.value in DYNAMIC_VELOCITY)
        dyn_off = np.array([d[0] for d in dyn])
        open_ties: dict[int, list] = {}
        for el in flat.notes:
            dur = float(el.duration.quarterLength)
            if dur <= 0:  # grace notes
                continue
            start = float(el.offset)
            k = np.searchsorted(dyn_off, start + 1e-9) - 1 if len(dyn) else -1
            vel = dyn[k][1] if k >= 0 else DEFAULT_VELOCITY
            notes = el.notes if el.isChord else [el]
            for n in notes:
                p = int(n.pitch.midi)
                tie = (n.tie or el.tie)
                tie_type = tie.type if tie is not None else None
                if tie_type in ("stop", "continue") and p in open_ties:
                    open_ties[p][1] = start + dur  # extend the tied note
                    if tie_type == "stop":
                        del open_ties[p]
                    continue
                row = [start, start + dur, p, vel]
                rows.append(row)
                if tie_type in ("start", "continue"):
                    open_ties[p] = row
    if not rows:
        return np.zeros((0, 4), dtype=np.float64)
    arr = np.asarray(rows, dtype=np.float64)
    arr[:, 0] = _to_seconds(arr[:, 0], offs, secs, qpms)
    arr[:, 1] = _to_seconds(arr[:, 1], offs, secs, qpms)
    return arr


def corpus_paths(composers=COMPOSERS) -> list[tuple[str, str]]:
    """(piece name, file path) for every score of the given music21 corpus composers."""
    from music21 import corpus

    base = Path(corpus.__file__).parent
    out = []
    for comp in composers:
        for p in sorted(corpus.getComposer(comp)):
            p = Path(p)
            if p.suffix.lower() in SCORE_SUFFIXES:
                out.append((p.relative_to(base).as_posix() if p.is_relative_to(base) else p.name, str(p)))
    return out


def _parse_piece(item):
    """Worker: (name, path) -> (list of (name, tokens), error or None)."""
    import warnings

    warnings.filterwarnings("ignore")
    name, path = item
    try:
        from music21 import converter, stream

        parsed = converter.parse(path)
        # an abc Opus in this corpus (Josquin) holds the voices of one piece: merge them
        scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        toks = notes_to_tokens(np.concatenate([render_score(sc) for sc in scores]))
        return ([(name, toks.astype(np.int16))], None) if len(toks) else ([], "no notes")
    except Exception as exc:  # music21 raises anything on scores it cannot read
        return [], f"{type(exc).__name__}: {exc}"


def _progress(total: int, desc: str):
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="piece", file=sys.stderr, disable=None)
    except ImportError:  # pragma: no cover
        return None


def _run_parallel(fn, items, workers: int, desc: str):
    """Map fn over items in `workers` processes (in-process when 1), with a progress bar and log lines."""
    bar = _progress(len(items), desc)
    t0, results = time.time(), []
    if workers <= 1:
        it = map(fn, items)
        pool = None
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn" if sys.platform == "darwin" else "fork").Pool(workers)
        it = pool.imap(fn, items, chunksize=4)
    try:
        for i, r in enumerate(it):
            results.append(r)
            if bar is not None:
                bar.update(1)
            if (bar is None or bar.disable) and (i + 1) % 100 == 0:
                print(f"{desc}: {i + 1}/{len(items)} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.terminate()
    return results


def _default_workers() -> int:
    value = os.environ.get("ZOO_DATA_WORKERS", "")
    if not value:
        return min(2, os.cpu_count() or 1)
    if not value.isdigit() or not 1 <= int(value) <= 256:   # "abc" was a ValueError traceback
        raise DataError(f"ZOO_DATA_WORKERS must be a whole number from 1 to 256, got {value!r}")
    return int(value)


def music21_corpus(max_pieces: int | None = None, workers: int | None = None, composers=COMPOSERS,
                   refresh: bool = False) -> TokenCorpus:
    """The embedded classical corpus, tokenized and cached (parsed on first use)."""
    if max_pieces is None and os.environ.get("ZOO_MT_MAX_PIECES"):
        max_pieces = int(os.environ["ZOO_MT_MAX_PIECES"])
    items = corpus_paths(composers)
    if max_pieces is not None:
        # spread the cap over the corpus rather than taking the first composers only
        items = sorted(items, key=lambda it: hashlib.sha1(it[0].encode()).hexdigest())[:max_pieces]
        items.sort()
    key = hashlib.sha1(json.dumps([DATA_VERSION, [n for n, _ in items]]).encode()).hexdigest()[:12]
    path = cache_dir() / f"music21-v{DATA_VERSION}-{key}"
    if not refresh:
        cached = _IN_MEMORY.get(path) or TokenCorpus.load(path)
        if cached is not None:
            return cached
    workers = workers or _default_workers()
    print(f"music-transformer: parsing {len(items)} music21 scores in {workers} process(es) "
          f"(first run only; cached in {path.parent})", file=sys.stderr, flush=True)
    names, tokens, skipped = [], [], []
    for (name, _), (pieces, err) in zip(items, _run_parallel(_parse_piece, items, workers, "music21 corpus")):
        if err is not None:
            skipped.append(name)
        for n, t in pieces:
            names.append(n)
            tokens.append(t.astype(np.int64))
    corpus = TokenCorpus(names, tokens, skipped)
    _save_or_say(corpus, path)
    return corpus


_WARNED: set = set()
_IN_MEMORY: dict[Path, TokenCorpus] = {}   # corpora whose cache could not be written: the other splits reuse them


def _save_or_say(corpus: TokenCorpus, path: Path) -> None:
    """Cache a tokenised corpus; a cache folder that cannot be written costs the next run time, not this one
    (as for MuseGAN), and is said once per folder."""
    try:
        corpus.save(path)
    except OSError as exc:
        _IN_MEMORY[path] = corpus
        if path.parent not in _WARNED:
            _WARNED.add(path.parent)
            print(f"music-transformer: warning: cannot cache the tokenised data in {path.parent} "
                  f"({exc.strerror or exc}); using it from memory, so the next run tokenises again "
                  f"(set ZOO_CACHE_DIR to a writable folder)", file=sys.stderr)


def _read_midi_item(path):
    try:
        return notes_to_tokens(read_midi_notes(path)).astype(np.int16), None
    except MidiError as exc:
        return None, str(exc)
    except Exception as exc:  # a truncated file may break the reader in any way
        return None, f"{type(exc).__name__}: {exc}"


def midi_folder_corpus(folder: str | os.PathLike, workers: int | None = None) -> TokenCorpus:
    """Every .mid/.midi file under folder (recursively), tokenized and cached; unreadable ones skipped and counted."""
    folder = Path(folder).expanduser()
    files = zoo_data.midi_files(folder)   # read in parallel below, so zoo.data.read_midi_folder's loop is not used
    listing = [(name, p.stat().st_size, p.stat().st_mtime_ns) for name, p in files]
    key = hashlib.sha1(json.dumps([DATA_VERSION, str(folder.resolve()), listing]).encode()).hexdigest()[:12]
    path = cache_dir() / f"midi-v{DATA_VERSION}-{key}"
    cached = _IN_MEMORY.get(path) or TokenCorpus.load(path)
    if cached is not None:
        return cached
    workers = workers or _default_workers()
    results = _run_parallel(_read_midi_item, [str(p) for _, p in files], workers if len(files) > 50 else 1,
                            "MIDI files")
    names, tokens, skipped = [], [], []
    for (rel, _, _), (toks, err) in zip(listing, results):
        if toks is None or len(toks) == 0:
            skipped.append(rel)
        else:
            names.append(rel)
            tokens.append(toks.astype(np.int64))
    if skipped:
        print(f"music-transformer: skipped {len(skipped)} of {len(files)} MIDI files "
              f"(unreadable or without notes)", file=sys.stderr)
    corpus = TokenCorpus(names, tokens, skipped)
    _save_or_say(corpus, path)
    return corpus


@functools.lru_cache(maxsize=4)
def cached_corpus(source: str | None, max_pieces: int = 0) -> TokenCorpus:
    """load_corpus(source), remembered for this process: training, evaluation and release read it once."""
    return load_corpus(source, max_pieces=max_pieces or None)


def load_corpus(source=None, **kw) -> TokenCorpus:
    """source None -> the embedded music21 corpus; a folder -> its MIDI files."""
    if source is None or str(source) in ("", "music21", "embedded"):
        return music21_corpus(**{k: v for k, v in kw.items() if k in ("max_pieces", "workers")})
    return midi_folder_corpus(source, workers=kw.get("workers"))


# --------------------------------------------------------------------------- augmentation


def transpose_tokens(tokens: np.ndarray, shift: int) -> np.ndarray:
    """Shift every note-on/off by `shift` semitones (the caller keeps pitches in range)."""
    out = tokens.copy()
    notes = tokens < TIME_SHIFT
    out[notes] += shift
    return out


def pitch_range(tokens: np.ndarray) -> tuple[int, int] | None:
    """Lowest and highest pitch of the note events, or None."""
    notes = tokens[tokens < TIME_SHIFT] % 128
    return (int(notes.min()), int(notes.max())) if len(notes) else None


def stretch_tokens(tokens: np.ndarray, factor: float) -> np.ndarray:
    """Scale every gap between events by factor, re-emitting runs of time shifts."""
    out, gap = [], 0

    def flush_gap():
        g = max(1, round(gap * factor))
        while g > 0:
            s = min(g, N_SHIFTS)
            out.append(TIME_SHIFT + s - 1)
            g -= s

    for t in tokens.tolist():
        if TIME_SHIFT <= t < VELOCITY:
            gap += t - TIME_SHIFT + 1
            continue
        if gap:
            flush_gap()
            gap = 0
        out.append(t)
    if gap:
        flush_gap()
    return np.asarray(out, dtype=np.int64)


# --------------------------------------------------------------------------- datasets


class CropDataset(torch.utils.data.Dataset):
    """Random crops of block_size+1 tokens (PAD-padded), fresh every epoch, optionally augmented.

    Each piece (with EOS appended) gives max(1, len // block_size) samples per epoch, so long
    pieces are seen in proportion to their length. Sample i of epoch e draws its crop,
    transposition and stretch from numpy's generator seeded with (seed, e, i).
    """

    def __init__(self, pieces: list[np.ndarray], block_size: int, seed: int = 0, augment: bool = True,
                 transpose: int = 3, stretch: float = 0.05, first: bool = False):
        if not pieces:
            raise DataError("no pieces in this split; use more data")
        self.pieces = [np.concatenate([p.astype(np.int64), [EOS]]) for p in pieces]
        self.block_size, self.seed, self.augment = block_size, seed, augment
        self.transpose, self.stretch = int(transpose), float(stretch)
        self.first = first  # the book's way: always the opening block of each piece
        counts = [1 if first else max(1, len(p) // block_size) for p in self.pieces]
        self.index = np.repeat(np.arange(len(self.pieces)), counts)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the crops and augmentations of this epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        piece = self.pieces[self.index[i]]
        n = self.block_size + 1
        stretching = self.augment and self.stretch > 0
        want = n + (int(math.ceil(n * self.stretch)) + 8 if stretching else 0)
        start = 0 if self.first else int(rng.integers(0, max(1, len(piece) - n + 1)))
        x = piece[start:start + want]
        if self.augment and self.transpose > 0:
            rng_ = pitch_range(x)
            if rng_ is not None:
                lo, hi = max(-self.transpose, -rng_[0]), min(self.transpose, 127 - rng_[1])
                x = transpose_tokens(x, int(rng.integers(lo, hi + 1)))
        if stretching:
            x = stretch_tokens(x, float(rng.uniform(1 - self.stretch, 1 + self.stretch)))
        x = x[:n]
        if len(x) < n:
            x = np.concatenate([x, np.full(n - len(x), PAD, dtype=np.int64)])
        return torch.from_numpy(x)


class EvalDataset(torch.utils.data.Dataset):
    """Every token of a split exactly once: consecutive windows of block_size+1 (overlapping by one)."""

    def __init__(self, pieces: list[np.ndarray], block_size: int):
        if not pieces:
            raise DataError("no pieces in this split; use more data")
        self.pieces = pieces   # whole pieces, for continuation metrics (zoo eval)
        self.windows = []
        for p in pieces:
            p = np.concatenate([p.astype(np.int64), [EOS]])
            for s in range(0, max(1, len(p) - 1), block_size):
                w = p[s:s + block_size + 1]
                self.windows.append(np.concatenate([w, np.full(block_size + 1 - len(w), PAD, np.int64)]))

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.windows[i])


def build_dataset(source: str | None, split: str, model) -> EvalDataset:
    """Registered (plugin.py): every token of one split of `source` (None: the music21 corpus) once, unaugmented,
    in the model's block_size windows: what `zoo eval` reads. Training's random augmented crops and its caps
    (max_pieces, eval_windows) come from the run's config, in MusicTransformerTrainer.build_dataset."""
    return EvalDataset(cached_corpus(None if source is None else str(source), 0).split(split), model.config.block_size)
