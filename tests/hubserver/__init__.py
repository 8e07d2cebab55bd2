"""Test-only Hub servers on loopback: olah (a real Hub mirror) and a small upload stand-in."""
