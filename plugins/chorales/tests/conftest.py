"""Fixtures of the chorale library's own tests (run from the checkout by `make test`, or here with pytest)."""

from zoo.testing import ZOO, one_torch_thread, zoo_cli  # noqa: F401  (fixtures shared by every plugin's tests)
