"""The version of musezoo, in the lowest layer so that every module can name it without importing the API."""

__version__ = "0.1.0"
