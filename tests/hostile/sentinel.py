"""A pickle that creates a file if it is ever unpickled: the sign that a loader ran a pickle's code."""

from __future__ import annotations

from pathlib import Path


class Sentinel:
    """pickle.dumps(Sentinel(path)) touches `path` when loaded; a test asserts that the file never appears."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))
