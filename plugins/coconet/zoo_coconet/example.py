"""The melody the model card, the README and `make demo` harmonize: the first eight bars of Beethoven's
"Ode to Joy" (1824, public domain) in G major, a tune Bach never harmonized, so the chorales cannot hold it."""

from __future__ import annotations

# (MIDI pitch, length in 16ths); 4/4, 8 bars
ODE_TO_JOY = [(71, 4), (71, 4), (72, 4), (74, 4), (74, 4), (72, 4), (71, 4), (69, 4),
              (67, 4), (67, 4), (69, 4), (71, 4), (71, 6), (69, 2), (69, 8),
              (71, 4), (71, 4), (72, 4), (74, 4), (74, 4), (72, 4), (71, 4), (69, 4),
              (67, 4), (67, 4), (69, 4), (71, 4), (69, 6), (67, 2), (67, 8)]


def ode_to_joy(tempo: float = 80.0):
    """The melody as a one-track PrettyMIDI (the soprano to harmonize)."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    melody = pretty_midi.Instrument(program=73, name="Melody")
    step, t = 60.0 / tempo / 4, 0
    for pitch, length in ODE_TO_JOY:
        melody.notes.append(pretty_midi.Note(velocity=90, pitch=pitch, start=t * step, end=(t + length) * step))
        t += length
    midi.instruments.append(melody)
    return midi
