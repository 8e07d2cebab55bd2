"""Errors a user can cause. The CLI prints their message on one line and exits 2."""


class ZooError(Exception):
    """Base class: something the user can fix. The message says how."""


class ConfigError(ZooError):
    """A config value or key is invalid."""


class UnknownNameError(ZooError):
    """A model, architecture, tokenizer or trainer name is not registered."""


class CheckpointError(ZooError):
    """A weights folder is missing, corrupt or incompatible."""


class MidiError(ZooError):
    """A MIDI file cannot be read or written."""


class PluginError(ZooError):
    """A plugin is broken or conflicts with another."""


class HubError(ZooError):
    """The Hugging Face Hub cannot serve what was asked."""


class DataError(ZooError):
    """Training or evaluation data cannot be used."""
