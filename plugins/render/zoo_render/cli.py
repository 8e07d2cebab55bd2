"""What `zoo generate --plot/--render/--score/--staves/--soundfont` and `zoo plot` do. The core's CLI only
declares these flags; when one is given it hands its parsed arguments here (zoo.cli.render_part), so the
checks and the drawing of the render part live in one place, beside the renderers they call."""

from __future__ import annotations

from pathlib import Path

from zoo.cli import printable
from zoo.errors import ConfigError
from zoo.midi import check_output_path, last_note_end, output_paths, read_midi

from zoo_render.audio import find_soundfont, fluidsynth_path, render_audio
from zoo_render.pianoroll import check_plot_target, plot_pianoroll
from zoo_render.score import check_score_target, write_score

EXAMPLES = {"plot": "roll.png", "render": "out.wav", "score": "out.musicxml"}   # for a path that is a folder


class GenerateExtras:
    """--plot / --render / --score of one `zoo generate`: checked when made, before any model is loaded, so a
    missing FluidSynth, soundfont or engraver, or a bad output path, fails before any work; written after the
    MIDI files, one per piece (OUT-1.png … like the MIDI files)."""

    def __init__(self, args):
        self.args = args
        for opt, example in EXAMPLES.items():
            for path in output_paths(getattr(args, opt), args.num) if getattr(args, opt) else []:
                check_output_path(path, example=example)
        if args.plot:   # a bad --plot format fails now, not after the generation
            for path in output_paths(args.plot, args.num):
                check_plot_target(path)
        if args.staves is not None and not args.score:   # it was silently ignored
            raise ConfigError("--staves is for --score OUT.musicxml|OUT.pdf|OUT.png")
        if args.soundfont and not args.render:
            raise ConfigError("--soundfont is for --render OUT.wav")
        if args.render:
            fluidsynth_path(), find_soundfont(args.soundfont)
        if args.score:
            for path in output_paths(args.score, args.num):
                check_score_target(path)
        self.staves = None
        self.prompt = None

    def use_model(self, cls, options: dict) -> None:
        """What the model's class and its generate options change: the staves --score engraves, and the prompt
        --plot shades (a continuation's, not a melody the model harmonized, and only when the piece includes it)."""
        if self.args.score:
            self.staves = score_layout(cls, self.args.staves)
        if cls.prompt_role == "continued" and options.get("include_prompt") is not False:
            self.prompt = options.get("prompt")

    def write(self, pieces: list) -> None:
        """Draw, play and engrave each piece, printing each path written."""
        args = self.args
        prompt_end = None   # a continuation's plot shades the prompt and marks where the new music starts
        # only for --plot: a prompt the model's own reader took may be one pretty_midi refuses, after the MIDI is written
        if args.plot and self.prompt is not None:
            prompt_end = last_note_end(read_midi(self.prompt))   # not get_end_time(): trailing pedal and meta events
        for opt, fn in (("plot", lambda m, p: plot_pianoroll(m, p, title=printable(p.stem), prompt_end=prompt_end)),
                        ("render", lambda m, p: render_audio(m, p, soundfont=args.soundfont)),
                        ("score", lambda m, p: write_score(m, p, title=printable(p.stem), staves=self.staves))):
            target = getattr(args, opt)
            if target:
                for midi, path in zip(pieces, output_paths(target, len(pieces))):
                    print(printable(fn(midi, path)))


def score_layout(cls, name: str | None):
    """The staves --score engraves: a layout the model declares (Model.score_layouts), else None (a staff per track)."""
    layouts = cls.score_layouts
    if name is None:
        return next(iter(layouts.values()), None)
    if name not in layouts:
        raise ConfigError(f"{cls.arch} has no staff layout {name!r}; "
                          + (f"use --staves {' or '.join(layouts)}" if layouts else "leave out --staves"))
    return layouts[name]


def plot_command(args) -> int:
    """`zoo plot MIDI -o OUT.png`: a piano roll of a MIDI file, the prompt it continues shaded if given."""
    check_output_path(args.output, example="roll.png")
    title = args.title or printable(Path(args.midi).name)
    prompt_end = None if args.prompt is None else last_note_end(read_midi(args.prompt))
    print(printable(plot_pianoroll(args.midi, args.output, time=args.time, title=title, prompt_end=prompt_end)))
    return 0
