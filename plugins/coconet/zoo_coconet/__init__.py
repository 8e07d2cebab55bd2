"""Coconet for musezoo: a convolutional orderless NADE that harmonizes melodies in the style of Bach's chorales."""

__version__ = "0.1.0"
