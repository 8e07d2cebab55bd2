"""Four-voice training data: Bach chorales from music21 (the default), the book's npz, or a MIDI folder.

Everything becomes windows of n_bars bars, aligned to bar lines, with a one-bar hop, stored as
pitch grids (windows, 4 voices, n_bars*steps) of MIDI numbers with -1 for a rest. Splits are
deterministic: by BWV number for chorales (all movements of one cantata in one split), by file
for MIDI folders. The chorale parse (~30 s or more) runs once and is cached as .npz under the user
cache directory, keyed by DATA_VERSION and the grid parameters.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo import data as zoo_data
from zoo.errors import DataError

from .grid import REST, VOICES, midi_to_grid, notes_to_grid

DATA_VERSION = 2   # 2: the Humdrum chorales (parts spine_N) are read in score order
SPLITS = ("train", "valid", "test")


def cache_dir() -> Path:
    """The chorales/ folder of musezoo's cache (zoo.data.cache_dir)."""
    return zoo_data.cache_dir("chorales")


def split_of(key: str) -> str:
    """A deterministic ~80/10/10 split from the crc32 of a key (BWV number or file name). These arguments
    decided which chorales musegan-bach never saw in training: keep them."""
    return zoo_data.split_of(key, valid=0.1, test=0.1, buckets=10, hash="crc32")


@dataclass
class WindowData:
    """Windows per split (pitch grids), where each came from, and what was skipped."""

    splits: dict[str, np.ndarray]                    # split -> (N, tracks, n_bars*steps) int16
    sources: dict[str, list[str]] = field(default_factory=dict)   # split -> source name per window
    stats: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line: counts of pieces and windows."""
        counts = ", ".join(f"{s} {len(self.splits[s])}" for s in SPLITS)
        return f"{self.stats.get('source', 'data')}: {self.stats.get('used', '?')} pieces used, " \
               f"{self.stats.get('skipped', 0)} skipped; windows: {counts}"


def cut_windows(grid: np.ndarray, bar_starts: list[int], n_bars: int, steps_per_bar: int) -> list[np.ndarray]:
    """Windows of n_bars consecutive full bars: bar_starts are the start steps of full bars, hop one bar."""
    windows, starts = [], set(bar_starts)
    width = n_bars * steps_per_bar
    for s in bar_starts:
        if all(s + k * steps_per_bar in starts for k in range(n_bars)) and s + width <= grid.shape[1]:
            w = grid[:, s:s + width]
            if (w != REST).any():
                windows.append(w)
    return windows


# --- Bach chorales from music21 ----------------------------------------------------------------

class Skip(DataError):
    """A piece that cannot be used; the message is the reason (counted, never fatal)."""


def chorale_voices(score, n_tracks: int = 4):
    """The four voice parts: by part name, or in score order for the Humdrum files whose parts are named spine_N."""
    parts = list(score.parts)
    # Humdrum (.krn) files have no part names; music21 gives those parts the id spine_N
    names = [str(p.partName or p.id or "").strip().lower() for p in parts]
    chosen = []
    for voice in VOICES[:n_tracks]:
        match = [p for p, n in zip(parts, names) if n.startswith(voice.lower())]
        if len(match) != 1:
            break
        chosen.append(match[0])
    else:
        return chosen
    if len(parts) == n_tracks and all(re.fullmatch(r"spine_\d+", n) for n in names):
        return parts
    raise Skip(f"no {n_tracks} voices ({len(parts)} parts: {', '.join(n or '?' for n in names)})")


def chorale_grid(score, n_tracks: int = 4, steps_per_bar: int = 16, n_pitches: int = 128):
    """A parsed chorale -> (pitch grid (4, T) on a 16th grid from the score's start, start steps of its full 4/4 bars)."""
    voices = chorale_voices(score, n_tracks)
    per_quarter = steps_per_bar / 4
    notes = []
    for part in voices:
        vnotes = []
        for n in part.stripTies().flatten().notes:
            ql = float(n.duration.quarterLength)
            if ql <= 0:
                continue  # grace notes take no time on the grid
            pitch = max(p.midi for p in n.pitches)   # the top note of a chord inside one voice
            start = round(float(n.offset) * per_quarter)
            vnotes.append((pitch, start, max(start + 1, round((float(n.offset) + ql) * per_quarter))))
        notes.append(vnotes)
    grid = notes_to_grid(notes, n_pitches=n_pitches)
    bar_starts = []
    for m in voices[0].getElementsByClass("Measure"):
        # a full 4/4 bar (pickups, the partial bars around repeats and 3/4 bars are never window starts)
        if float(m.duration.quarterLength) == 4.0 and float(m.barDuration.quarterLength) == 4.0:
            start = float(m.offset) * per_quarter
            if start == int(start):
                bar_starts.append(int(start))
    if not bar_starts:
        raise Skip("no full 4/4 bars")
    return grid, bar_starts


def chorale_names() -> list[str]:
    """The corpus names of music21's Bach chorales (Riemenschneider numbering; 371 entries)."""
    from music21 import corpus

    return list(corpus.chorales.Iterator(returnType="filename"))


def bwv_key(name: str) -> str:
    """'bach/bwv153.1' -> 'bwv153': the split key, so every movement of a cantata lands in one split."""
    base = name.rsplit("/", 1)[-1]
    m = re.match(r"(bwv\d+)", base)
    return m.group(1) if m else base


def build_chorales(names: list[str] | None = None, n_tracks: int = 4, n_bars: int = 2, steps_per_bar: int = 16,
                   n_pitches: int = 84, progress=None) -> WindowData:
    """Parse chorales with music21 and cut windows (no cache); bad chorales are skipped and counted."""
    from music21 import corpus

    all_names = chorale_names() if names is None else list(names)
    unique = list(dict.fromkeys(all_names))
    splits = {s: [] for s in SPLITS}
    sources = {s: [] for s in SPLITS}
    skipped, used, windows_of = {}, 0, {}
    for i, name in enumerate(unique):
        if progress:
            progress(i, len(unique), name)
        try:
            try:
                score = corpus.parse(name)
            except Exception as exc:   # a corrupt file must not stop the run
                raise Skip(f"unreadable ({type(exc).__name__})") from None
            grid, bar_starts = chorale_grid(score, n_tracks, steps_per_bar, n_pitches)
            wins = cut_windows(grid, bar_starts, n_bars, steps_per_bar)
            if not wins:
                raise Skip(f"no run of {n_bars} full 4/4 bars")
        except Skip as exc:
            reason = str(exc).split(" (")[0]
            skipped.setdefault(reason, []).append(name)
            continue
        used += 1
        split = split_of(bwv_key(name))
        splits[split] += wins
        sources[split] += [name] * len(wins)
        windows_of[name] = len(wins)
    width = n_bars * steps_per_bar
    stats = {
        "source": "music21 Bach chorales", "data_version": DATA_VERSION, "listed": len(all_names),
        "unique": len(unique), "used": used, "skipped": sum(len(v) for v in skipped.values()),
        "skipped_by_reason": {k: sorted(v) for k, v in skipped.items()},
        "pieces_per_split": {s: len(set(sources[s])) for s in SPLITS},
        "windows_per_split": {s: len(splits[s]) for s in SPLITS},
        "n_bars": n_bars, "steps_per_bar": steps_per_bar, "n_pitches": n_pitches,
    }
    arrays = {s: np.asarray(splits[s], dtype=np.int16).reshape(-1, n_tracks, width) for s in SPLITS}
    return WindowData(arrays, sources, stats)


def _atomic_savez(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp.npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_windows(data: WindowData, path: Path) -> None:
    """Write WindowData as an .npz with no pickled objects (sources and stats as JSON text)."""
    arrays = {f"{s}_grids": data.splits[s] for s in SPLITS}
    arrays["sources"] = np.array(json.dumps(data.sources))
    arrays["stats"] = np.array(json.dumps(data.stats))
    _atomic_savez(Path(path), **arrays)


def load_windows(path: Path) -> WindowData:
    """Read save_windows' output (allow_pickle stays off)."""
    with np.load(path, allow_pickle=False) as f:
        return WindowData({s: f[f"{s}_grids"] for s in SPLITS}, json.loads(str(f["sources"])), json.loads(str(f["stats"])))


def load_chorales(n_bars: int = 2, steps_per_bar: int = 16, n_pitches: int = 84, cache: bool = True,
                  progress=None) -> WindowData:
    """The chorale windows, from the cache when it is there (else parsed once and cached)."""
    path = cache_dir() / f"chorales-v{DATA_VERSION}-bars{n_bars}-steps{steps_per_bar}-pitches{n_pitches}.npz"
    if cache and path.is_file():
        try:
            return load_windows(path)
        except Exception:
            pass  # a damaged cache is rebuilt
    if progress is None:   # the first parse takes minutes: a bar on a terminal, silence in a pipe or a log
        from zoo.progress import bar

        shown = bar(desc="parsing the Bach chorales (once, then cached)", unit="chorale")

        def progress(i, total, name):
            shown.total = total
            shown.update(i + 1 - shown.n)
    else:
        shown = None
    try:
        data = build_chorales(n_bars=n_bars, steps_per_bar=steps_per_bar, n_pitches=n_pitches, progress=progress)
    finally:
        if shown is not None:
            shown.close()
    if cache:
        try:
            save_windows(data, path)
        except OSError:
            pass  # a read-only cache dir costs time, not correctness
    return data


# --- the book's Jsb16thSeparated.npz --------------------------------------------------------------

# Bounds on the book's file, checked from the declared sizes before anything is decompressed (the real file:
# ~380 pieces, ~10^6 numbers, 1.3 MB unpacked); a 1 MB .npz can declare gigabytes of zeros
MAX_NPZ_MEMBER_BYTES = 256 * 1024 * 1024   # one split, unpacked
MAX_NPZ_PIECES = 100_000                   # pieces per split
MAX_NPZ_NUMBERS = 2 ** 25                  # numbers in one split (256 MB as float64)


def load_jsb_npz(path, n_tracks: int = 4, n_bars: int = 2, steps_per_bar: int = 16, n_pitches: int = 84) -> WindowData:
    """The book's format: keys train/valid/test, each a list of (T, 4) arrays of MIDI pitches per 16th (NaN = rest).

    Its own split is kept. Its pieces carry no bar lines, so windows start at step 0 and hop one
    bar. Voices are ordered high to low by mean pitch. The file stores object arrays, which numpy
    writes as pickles; they are decoded by `decode_numpy_pickle`, which understands only numpy's own
    layout and never imports or calls anything (a hostile .npz cannot run code or forge pointers).
    A plain numeric (pieces, T, 4) array per split is read too.
    """
    path = Path(path)
    try:
        parts = {s: read_npz_split(path, s) for s in SPLITS}
    except DataError:
        raise
    except KeyError as exc:
        raise DataError(f"{path}: no {exc} array; a Jsb16thSeparated-style .npz has train, valid and test") from None
    except Exception as exc:   # zipfile, numpy's header parser and our decoder raise several types
        raise DataError(f"{path}: cannot read it as .npz ({type(exc).__name__}: {str(exc)[:200]})") from None
    splits, sources, skipped, used = {}, {}, {}, 0
    width = n_bars * steps_per_bar
    for s in SPLITS:
        wins, srcs = [], []
        for i, piece in enumerate(parts[s]):
            try:
                arr = np.asarray(piece, dtype=float)
                if arr.ndim != 2 or n_tracks not in arr.shape:
                    raise Skip(f"shape {arr.shape}")
                if arr.shape[1] != n_tracks:
                    arr = arr.T
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)   # an all-rest voice has no mean
                    order = np.argsort(-np.nan_to_num(np.nanmean(np.where(arr > 0, arr, np.nan), axis=0), nan=-1))
                arr = arr[:, order].T
                grid = np.where(np.isfinite(arr) & (arr >= 0) & (arr < n_pitches), np.nan_to_num(arr), REST).astype(np.int16)
                bars = list(range(0, grid.shape[1] - steps_per_bar + 1, steps_per_bar))
                w = cut_windows(grid, bars, n_bars, steps_per_bar)
                if not w:
                    raise Skip("shorter than a window")
            except Skip as exc:
                skipped.setdefault(str(exc), []).append(f"{s}[{i}]")
                continue
            except Exception as exc:
                skipped.setdefault(type(exc).__name__, []).append(f"{s}[{i}]")
                continue
            used += 1
            wins += w
            srcs += [f"{s}[{i}]"] * len(w)
        splits[s] = np.asarray(wins, dtype=np.int16).reshape(-1, n_tracks, width)
        sources[s] = srcs
    stats = {"source": str(path), "used": used, "skipped": sum(len(v) for v in skipped.values()),
             "skipped_by_reason": skipped, "windows_per_split": {s: len(splits[s]) for s in SPLITS}}
    return WindowData(splits, sources, stats)


def read_npz_split(path: Path, key: str) -> list:
    """One split of an .npz as a list of pieces, its size checked from the zip and .npy headers before reading."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(f"{key}.npy")   # KeyError: no such split
        if info.file_size > MAX_NPZ_MEMBER_BYTES:
            raise DataError(f"{path}: {key} unpacks to {info.file_size:,} bytes (limit {MAX_NPZ_MEMBER_BYTES:,}); "
                            f"is it the right file?")
        with z.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fp)
            if dtype.hasobject:   # the book's layout: a 1-D object array of (T, 4) float arrays
                if len(shape) != 1 or shape[0] > MAX_NPZ_PIECES:
                    raise DataError(f"{path}: {key} is an object array of shape {shape}; expected a list of at most "
                                    f"{MAX_NPZ_PIECES:,} pieces")
                pieces = decode_numpy_pickle(fp.read(MAX_NPZ_MEMBER_BYTES + 1), max_numbers=MAX_NPZ_NUMBERS)
                if not isinstance(pieces, list) or not all(isinstance(p, np.ndarray) for p in pieces):
                    raise DataError(f"{path}: {key} holds a {type(pieces).__name__}, not an array of pieces")
                return pieces
            if len(shape) != 3 or shape[0] > MAX_NPZ_PIECES or math.prod(shape) > MAX_NPZ_NUMBERS:
                raise DataError(f"{path}: {key} has shape {shape}; expected (pieces, steps, voices) with at most "
                                f"{MAX_NPZ_PIECES:,} pieces and {MAX_NPZ_NUMBERS:,} numbers")
            data = fp.read(math.prod(shape) * dtype.itemsize)
            arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
            return list(arr)


# What numpy's pickle of an array may name. These are never imported: each only selects a step below.
_NUMPY_GLOBALS = {**{(f"numpy.{c}.multiarray", "_reconstruct"): "reconstruct" for c in ("core", "_core")},
                  **{(f"numpy.{c}.numeric", "_frombuffer"): "frombuffer" for c in ("core", "_core")},  # protocol 5
                  ("numpy", "ndarray"): "ndarray", ("numpy", "dtype"): "dtype",
                  ("_codecs", "encode"): "encode"}   # how protocol 2 writes bytes
# plain numeric dtypes and the object dtype of the outer array; no records, strings or datetimes
_DTYPE_CODE = re.compile(r"[<>|=]?(f[248]|i[1248]|u[1248]|b1|O[48]?)")


class _Dtype:
    def __init__(self, code: str):
        if not isinstance(code, str) or not _DTYPE_CODE.fullmatch(code):
            raise ValueError(f"dtype {code!r} is not a plain number type")
        self.dtype = np.dtype(code)

    def build(self, state):   # (version, byte order, ...): only the byte order matters for plain numbers
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">") and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(state[1])


class _Budget:
    """The numbers one pickle's arrays may hold, each use counted: an array listed again (a memo reference,
    BINGET) costs its numbers again, because every listed piece is processed and kept downstream. Counted once,
    100,000 references to one array in a 99 KB file asked for days of work and terabytes."""

    def __init__(self, numbers: int):
        self.limit = self.left = numbers
        self.listed: set[int] = set()   # ids of arrays an object array already holds

    def spend(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise ValueError(f"more than {self.limit:,} numbers in all (an array listed again counts again)")

    def list_pieces(self, pieces) -> None:
        """An object array lists these arrays: the first use of each was counted when it was built."""
        for piece in pieces:
            if id(piece) in self.listed:
                self.spend(piece.value.size)
            self.listed.add(id(piece))


class _Array:
    """An ndarray under construction: numpy pickles `_reconstruct(ndarray, (0,), b'b')`, then BUILD fills it."""

    def __init__(self):
        self.value = None

    def build(self, state, budget: _Budget):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise ValueError("array state is not (version, shape, dtype, fortran, data)")
        _, shape, dtype, fortran, data = state
        self.value = _make_array(shape, dtype, data, "F" if fortran is True else "C", budget)


def _make_array(shape, dtype, data, order: str, budget: _Budget):
    """A numeric array from raw bytes, or a list of already decoded arrays for the object dtype."""
    if not (isinstance(shape, tuple) and all(type(n) is int and 0 <= n for n in shape) and isinstance(dtype, _Dtype)):
        raise ValueError("bad array shape or dtype")
    count = math.prod(shape)
    if dtype.dtype.hasobject:
        if len(shape) != 1 or not isinstance(data, list) or len(data) != count \
                or not all(isinstance(a, _Array) and isinstance(a.value, np.ndarray) for a in data):
            raise ValueError("an object array may only hold numeric arrays")
        budget.list_pieces(data)
        return [a.value for a in data]
    budget.spend(count)
    if isinstance(data, str):   # Python 2 strings are bytes read as latin-1
        data = data.encode("latin-1")
    if not isinstance(data, (bytes, bytearray)) or len(data) != count * dtype.dtype.itemsize:
        raise ValueError(f"array data is not {count} x {dtype.dtype.itemsize} bytes")
    return np.frombuffer(bytes(data), dtype=dtype.dtype).reshape(shape, order=order).copy()


def decode_numpy_pickle(data: bytes, max_numbers: int = MAX_NPZ_NUMBERS):
    """Decode numpy's pickle of an array (object arrays of numeric arrays included) WITHOUT unpickling.

    pickletools only splits the bytes into opcodes; this walks them with a small stack machine that knows
    numpy's layout (protocols 2-5). A global is a name that selects one of the steps below, never an import,
    so an array is only ever built from a shape, a plain dtype and bytes of exactly the right length.
    Anything else (another global, opcode or argument) raises ValueError.
    """
    import pickletools

    stack, marks, memo, budget = [], [], {}, _Budget(max_numbers)

    def pop_mark():
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            break
        if name == "GLOBAL" or name == "STACK_GLOBAL":
            if name == "GLOBAL":
                module, attr = arg.split(" ", 1)
            else:
                attr = stack.pop()
                module = stack.pop()
            if (module, attr) not in _NUMPY_GLOBALS:
                raise ValueError(f"refusing {module}.{attr}: only numpy arrays may be in this file")
            stack.append(("global", _NUMPY_GLOBALS[module, attr]))
        elif name in ("BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name == "MARK":
            marks.append(len(stack))
        elif name == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif name in ("EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
            n = ("EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3").index(name)
            items = tuple(stack[len(stack) - n:]) if n else ()
            del stack[len(stack) - n:]
            stack.append(items)
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "LIST":
            stack.append(pop_mark())
        elif name == "APPEND":
            item = stack.pop()
            stack[-1].append(item)
        elif name == "APPENDS":
            items = pop_mark()
            stack[-1].extend(items)
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        elif name in ("BININT", "BININT1", "BININT2", "LONG1", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
                      "SHORT_BINSTRING", "BINSTRING", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BYTEARRAY8"):
            stack.append(arg)
        elif name == "REDUCE":
            args, func = stack.pop(), stack.pop()
            stack.append(_reduce(func, args, budget))
        elif name == "BUILD":
            state, obj = stack.pop(), stack[-1]
            if isinstance(obj, _Dtype):
                obj.build(state)
            elif isinstance(obj, _Array) and obj.value is None:
                obj.build(state, budget)
            else:
                raise ValueError("BUILD of something that is not an array or dtype")
        else:
            raise ValueError(f"pickle opcode {name} is not part of numpy's array layout")
    else:
        raise ValueError("the pickle has no STOP")
    if len(stack) != 1 or not isinstance(stack[0], _Array) or stack[0].value is None:
        raise ValueError("the pickle is not one array")
    return stack[0].value


def _reduce(func, args, budget: _Budget):
    """The calls numpy's array pickle makes, each checked and done by hand."""
    kind = func[1] if isinstance(func, tuple) and len(func) == 2 and func[0] == "global" else None
    if not isinstance(args, tuple):
        raise ValueError("call arguments are not a tuple")
    if kind == "reconstruct" and len(args) == 3 and args[0] == ("global", "ndarray"):
        return _Array()
    if kind == "dtype" and 1 <= len(args) <= 3:
        return _Dtype(args[0])
    if kind == "encode" and len(args) == 2 and isinstance(args[0], str) and args[1] == "latin1":
        return args[0].encode("latin-1")
    if kind == "frombuffer" and len(args) == 4 and args[3] in ("C", "F"):
        arr = _Array()
        arr.value = _make_array(args[2], args[1], args[0], args[3], budget)
        return arr
    raise ValueError(f"unexpected call in an array pickle ({kind or type(func).__name__})")


# --- a folder of 4-track MIDI files -------------------------------------------------------------

def load_midi_folder(path, n_tracks: int = 4, n_bars: int = 2, steps_per_bar: int = 16, n_pitches: int = 84) -> WindowData:
    """Every .mid/.midi under a folder: voices by name or track order, windows from time 0, split by file name."""
    from zoo.midi import read_midi

    root = Path(path)

    def windows(file):
        midi = read_midi(file)  # size, header and event-count limits, then pretty_midi
        try:
            grid = midi_to_grid(midi, n_tracks, steps_per_bar, n_pitches)
        except Exception as exc:
            raise Skip(str(exc).split(";")[0]) from None
        bars = list(range(0, grid.shape[1] - steps_per_bar + 1, steps_per_bar))
        found = cut_windows(grid, bars, n_bars, steps_per_bar)
        if not found:
            raise Skip("shorter than a window")
        return found, track_mapping(midi.instruments, n_tracks)

    splits = {s: [] for s in SPLITS}
    sources = {s: [] for s in SPLITS}
    skipped, used, mappings = {}, 0, []
    for rel, w, reason in zoo_data.read_midi_folder(root, windows):
        if reason is not None:
            skipped.setdefault(reason, []).append(rel)
            continue
        w, mapping = w
        mappings.append(mapping)
        used += 1
        s = split_of(rel)
        splits[s] += w
        sources[s] += [rel] * len(w)
    width = n_bars * steps_per_bar
    stats = {"source": str(root), "used": used, "skipped": sum(len(v) for v in skipped.values()),
             "skipped_by_reason": skipped, "windows_per_split": {s: len(splits[s]) for s in SPLITS},
             "tracks": summarize_mappings(mappings, n_tracks)}
    if mappings:   # how 6-16 tracks of a pop file became four voices is not obvious: one line says it
        import sys

        print(f"zoo: {root}: {stats['tracks']['line']}", file=sys.stderr)
    return WindowData({s: np.asarray(splits[s], dtype=np.int16).reshape(-1, n_tracks, width) for s in SPLITS}, sources, stats)


def track_mapping(instruments, n_tracks: int = 4) -> dict:
    """How one file's tracks became the voices: by name or by order, and what was left out."""
    from .grid import voices_by_name

    pitched = sum(1 for i in instruments if not i.is_drum)
    return {"by_name": voices_by_name(instruments, n_tracks) is not None, "pitched": pitched,
            "drums": sum(1 for i in instruments if i.is_drum)}


def summarize_mappings(mappings: list[dict], n_tracks: int = 4) -> dict:
    """Counts over the files used, and one line for the log: which files had their voices found by track name,
    which took the first n_tracks pitched tracks, and how many tracks were left out."""
    by_name = sum(m["by_name"] for m in mappings)
    by_order = [m for m in mappings if not m["by_name"]]
    left_out = sum(m["pitched"] - n_tracks for m in mappings)
    drums = sum(m["drums"] for m in mappings)
    counts = sorted({m["pitched"] for m in mappings})
    spread = (f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}") if counts else "0"
    line = (f"{len(mappings)} file(s) of {spread} pitched tracks: voices by track name ({', '.join(VOICES[:n_tracks])}) "
            f"in {by_name}, the first {n_tracks} pitched tracks in file order in {len(by_order)}; "
            f"{left_out} other pitched track(s) and {drums} drum track(s) left out")
    return {"by_name": by_name, "by_order": len(by_order), "left_out": left_out, "drums": drums, "line": line}


def load_data(source=None, **grid) -> WindowData:
    """None -> the music21 chorales (cached); a .npz file -> the book's format; a folder -> MIDI files."""
    if source is None or str(source) in ("", "chorales", "bach"):
        return load_chorales(**grid)
    path = Path(source).expanduser()
    if path.is_dir():
        return load_midi_folder(path, **grid)
    if path.is_file() and path.suffix == ".npz":
        return load_jsb_npz(path, **grid)
    if not path.exists():
        raise DataError(f"--data {source}: no such file or folder; give a MIDI folder, a Jsb16thSeparated-style .npz, "
                        f"or leave --data out for the Bach chorales")
    raise DataError(f"--data {source}: not a folder or an .npz file")


# --- torch datasets ---------------------------------------------------------------------------

def voice_ranges(grids: np.ndarray) -> list[tuple[int, int]]:
    """(lowest, highest) MIDI pitch of each voice over a set of windows."""
    out = []
    for v in range(grids.shape[1]):
        notes = grids[:, v][grids[:, v] != REST]
        out.append((int(notes.min()), int(notes.max())) if notes.size else (0, 127))
    return out


def transposition(grid: np.ndarray, ranges, transpose: int, seed: int, epoch: int, index: int) -> int:
    """The semitone shift of one window (voices, T) this epoch: drawn from (seed, epoch, index) among the
    shifts in [-transpose, transpose] that keep every voice inside its (lowest, highest) range; 0 if none do."""
    if not transpose:
        return 0
    sounding = [row[row != REST] for row in np.asarray(grid)]
    allowed = [s for s in range(-transpose, transpose + 1)
               if all(not notes.size or (notes.min() + s >= lo and notes.max() + s <= hi)
                      for notes, (lo, hi) in zip(sounding, ranges))]
    rng = np.random.default_rng([seed, epoch, index])
    return int(allowed[rng.integers(len(allowed))]) if allowed else 0


class TransposedWindows:
    """A map-style dataset of chorale windows (voices, T), each transposed this epoch by transposition():
    a shift in [-transpose, transpose] drawn from (seed, epoch, index) that keeps every voice inside
    `ranges`. What every chorale plugin's training data shares; a plugin's subclass makes its own item
    from window(index) in __getitem__ (a piano roll, a pitch tensor)."""

    def __init__(self, grids: np.ndarray, ranges, transpose: int = 0, seed: int = 0):
        self.grids, self.ranges = grids, ranges
        self.transpose, self.seed, self.epoch = int(transpose), int(seed), 0

    def __len__(self) -> int:
        return len(self.grids)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def shift_for(self, index: int) -> int:
        """The transposition of one item this epoch (0 without augmentation)."""
        return transposition(self.grids[index], self.ranges, self.transpose, self.seed, self.epoch, index)

    def window(self, index: int) -> np.ndarray:
        """Window `index` as int64 pitches, transposed by shift_for(index); rests stay rests."""
        g = np.asarray(self.grids[index], dtype=np.int64)
        s = self.shift_for(index)
        return np.where(g != REST, g + s, REST) if s else g
