"""Hostile-input helpers: the bad-MIDI corpus builder, the bounded in-process probe, and a pickle sentinel."""
