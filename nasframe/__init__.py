"""nasframe: neural architecture search as Lightning plugins.

The core (this package) knows no paper: search spaces, objectives, strategies and exporters plug in
through the hooks in ``nasframe.hookspecs``. See README.md for the quickstart.
"""

from nasframe.errors import ArchitectureError, CheckpointError, DataError, ExportError, NASFrameError, PluginError
from nasframe.export import load_model
from nasframe.hookspecs import hookimpl
from nasframe.host import SearchHost
from nasframe.module import NASModule, Plugin, SearchStep
from nasframe.spaces.architecture import Architecture
from nasframe.step import split_batch, unpack_batch
from nasframe.trainer import NASTrainer

__version__ = "0.1.0"

__all__ = [
    "Architecture", "ArchitectureError", "CheckpointError", "DataError", "ExportError", "NASFrameError", "NASModule",
    "NASTrainer", "Plugin", "PluginError", "SearchHost", "SearchStep", "hookimpl", "load_model", "split_batch",
    "unpack_batch",
]
