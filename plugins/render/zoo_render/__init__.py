"""See, hear and read the music: musezoo's optional render part (`pip install 'musezoo[render]'`).

    plot_pianoroll(midi, "out.png")          matplotlib (Agg): one colour per track, pitch names, a legend
    render_audio(midi, "out.wav")            the FluidSynth command line + a General MIDI soundfont
    write_score(midi, "out.musicxml")        music21; .pdf/.png are engraved by LilyPond or MuseScore

`zoo generate --plot/--render/--score` and `zoo plot` import it only when asked for, so a core install
never loads matplotlib or music21. Each module imports its own heavy library when first called.
External programs are found on PATH; when one is missing the error names the Debian package.
"""

from zoo_render.audio import SOUNDFONTS, find_soundfont, fluidsynth_path, render_audio, wav_stats
from zoo_render.common import RenderError, pitch_name
from zoo_render.pianoroll import MAX_PLOT_BEATS, check_plot_target, count_beats, plot_pianoroll
from zoo_render.score import (CLEFS, SCORE_SUFFIXES, check_score_target, engraver, quote_ly_header, to_score,
                              write_score)

__all__ = ["CLEFS", "MAX_PLOT_BEATS", "SOUNDFONTS", "SCORE_SUFFIXES", "RenderError", "check_plot_target",
           "check_score_target", "count_beats", "engraver", "find_soundfont", "fluidsynth_path", "pitch_name",
           "plot_pianoroll", "quote_ly_header", "render_audio", "to_score", "wav_stats", "write_score"]
