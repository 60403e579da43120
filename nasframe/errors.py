"""Errors raised for input a user can fix. Each message names the offending thing and what is accepted."""


class NASFrameError(Exception):
    """Base class of every error nasframe raises for user input (config, data, files, plugins)."""


class PluginError(NASFrameError):
    """An unknown plugin name, a plugin that fails to import, or a misspelt hook implementation."""


class ArchitectureError(NASFrameError, ValueError):
    """A malformed or invalid architecture (string, JSON, or choices outside the space)."""


class DataError(NASFrameError):
    """A missing data path, an unreadable data file or an empty dataset."""


class CheckpointError(NASFrameError):
    """A truncated, tampered or incompatible checkpoint or exported weights file."""


class ExportError(NASFrameError):
    """An export that cannot be written (e.g. the directory already exists) or loaded."""
