"""Cream of the Crop ("Distilling Prioritized Paths For One-Shot Neural Architecture Search") as a nasframe plugin.

Single-path training of a one-shot supernet (e.g. ``nasframe.spaces.mbconv.MBConvSpace``) in which a
board of prioritized paths teaches the sampled path, the teacher being chosen by a meta-learned
matching network. Registered under the ``nasframe`` entry-point group as ``cream``.
"""

from nasframe_cream.board import BoardEntry, PrioritizedBoard
from nasframe_cream.matching import MatchingNetwork
from nasframe_cream.strategy import CreamStrategy

__all__ = ["BoardEntry", "CreamStrategy", "MatchingNetwork", "PrioritizedBoard"]


def nasframe_components() -> dict[str, list[type]]:
    """What this plugin adds (shown by ``nasframe list``)."""
    return {"strategies": [CreamStrategy]}
