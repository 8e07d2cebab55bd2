"""Fixtures of the render part's own tests (run from the checkout by `make test`, or here with pytest)."""
