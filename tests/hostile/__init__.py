"""Hostile-input helpers: the bad-MIDI corpus builder and the bounded in-process probe."""
