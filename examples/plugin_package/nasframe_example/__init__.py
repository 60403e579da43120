"""nasframe-example: a search space plugin and a module-level observer hook.

nasframe imports this module through its entry point before parsing a config, so configs can name
``KernelChainSpace`` by class path, and registers it as a plugin, so the ``nasframe_*`` functions
below run in every search.
"""

from pathlib import Path

from nasframe_example.space import KernelChainSpace

__all__ = ["KernelChainSpace"]


def nasframe_components() -> dict[str, list[type]]:
    """Declare what this package adds, by kind; `nasframe list` shows it."""
    return {"spaces": [KernelChainSpace]}


def nasframe_search_end(nas, architecture, export_dir: Path | None) -> None:
    """Runs once a search has decided (pluggy passes only the arguments named here)."""
    if export_dir is not None:
        (export_dir / "chosen_by.txt").write_text(f"{type(nas.strategy).__name__}: {nas.search_space.format(architecture)}\n")
