"""musezoo plugin: the yourarch architecture. Imports nothing heavy: `zoo list` stays fast."""

__version__ = "0.1.0"
