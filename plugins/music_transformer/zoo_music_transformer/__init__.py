"""musezoo plugin: the Music Transformer (a GPT over 390 performance events)."""

__version__ = "0.1.0"
