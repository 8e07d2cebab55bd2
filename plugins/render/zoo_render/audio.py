"""Audio through the FluidSynth command line and a General MIDI soundfont, peak-normalised WAV."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from zoo.safeio import atomic_write
from zoo_render.common import RenderError, as_midi

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
              "/usr/share/soundfonts/default.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2")


def find_soundfont(soundfont=None) -> Path:
    """The given soundfont, $ZOO_SOUNDFONT, or the first General MIDI soundfont Debian installs."""
    if soundfont:
        sf = Path(soundfont)
        if not sf.is_file():
            raise RenderError(f"soundfont {sf} does not exist; give an .sf2 file with --soundfont")
        return sf
    for cand in filter(None, [os.environ.get("ZOO_SOUNDFONT"), *SOUNDFONTS]):
        if Path(cand).is_file():
            return Path(cand)
    raise RenderError("no General MIDI soundfont found; install one (Debian/Ubuntu: sudo apt-get install "
                      "fluid-soundfont-gm) or pass --soundfont FILE.sf2")


def fluidsynth_path() -> str:
    """The fluidsynth program, or a RenderError that says how to install it."""
    exe = shutil.which("fluidsynth")
    if not exe:
        raise RenderError("FluidSynth is not installed, so no audio can be rendered; install it "
                          "(Debian/Ubuntu: sudo apt-get install fluidsynth fluid-soundfont-gm; macOS: brew install fluid-synth)")
    return exe


def render_audio(midi, path, soundfont=None, sample_rate: int = 44100, peak_db: float = -1.0) -> Path:
    """Render MIDI to a 16-bit stereo WAV with FluidSynth, then normalise its peak to `peak_db` dBFS.

    FluidSynth's default gain (0.2) is quiet; rendering at 0.5 and normalising the peak gives a loud,
    unclipped file whatever the number of voices. The file lasts the music plus the instruments' release.
    """
    exe = fluidsynth_path()
    sf = find_soundfont(soundfont)
    midi = as_midi(midi)
    path = Path(path)
    if path.suffix.lower() != ".wav":
        raise RenderError(f"{path}: audio is written as WAV; use a .wav file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zoo-render-") as tmp:
        mid, raw = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        midi.write(str(mid))
        cmd = [exe, "-ni", "-q", "-g", "0.5", "-r", str(sample_rate), "-T", "wav", "-F", str(raw), str(sf), str(mid)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not raw.is_file():
            raise RenderError(f"fluidsynth failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-400:]}")
        with wave.open(str(raw), "rb") as w:
            params = w.getparams()
            frames = w.readframes(params.nframes)
        if params.sampwidth != 2:
            with atomic_write(path, RenderError) as tmp_out:
                shutil.copyfile(raw, tmp_out)
            return path
        audio = np.frombuffer(frames, dtype="<i2").astype(np.float64)
        peak = np.abs(audio).max() if audio.size else 0.0
        if peak > 0:
            audio *= (10 ** (peak_db / 20) * 32767) / peak
        out = np.clip(np.round(audio), -32768, 32767).astype("<i2")
        with atomic_write(path, RenderError) as tmp_out:
            with wave.open(str(tmp_out), "wb") as w:
                w.setnchannels(params.nchannels)
                w.setsampwidth(2)
                w.setframerate(params.framerate)
                w.writeframes(out.tobytes())
    return path


def wav_stats(path) -> dict:
    """Duration (s), sample rate, channels and peak / RMS level (dBFS) of a 16-bit WAV."""
    with wave.open(str(path), "rb") as w:
        n, rate, ch = w.getnframes(), w.getframerate(), w.getnchannels()
        audio = np.frombuffer(w.readframes(n), dtype="<i2").astype(np.float64) / 32768
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    rms = float(np.sqrt(np.mean(audio ** 2))) if audio.size else 0.0

    def db(x):
        return 20 * np.log10(x) if x > 0 else float("-inf")

    return {"seconds": n / rate, "sample_rate": rate, "channels": ch, "peak_dbfs": db(peak), "rms_dbfs": db(rms)}
