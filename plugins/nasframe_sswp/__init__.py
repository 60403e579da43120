"""SSWP-NAS ("Towards Self-supervised and Weight-preserving Neural Architecture Search") as a nasframe plugin.

A one-stage, label-free search on the DARTS cell space (``nasframe.spaces.darts.DARTSSpace``):
binary gates with two sampled paths per edge, a self-supervised objective (``nasframe.objectives.SimCLR``),
a warm-up / search / progressive-pruning schedule, and an export of the derived network carrying the
weights it was searched with. Registered under the ``nasframe`` entry-point group as ``sswp``.
"""

from nasframe_sswp.gates import GateSample, binary_gates, rescale_, single_paths
from nasframe_sswp.schedule import Schedule
from nasframe_sswp.strategy import SSWPStrategy

__all__ = ["GateSample", "SSWPStrategy", "Schedule", "binary_gates", "rescale_", "single_paths"]


def nasframe_components() -> dict[str, list[type]]:
    """What this plugin adds (shown by ``nasframe list``)."""
    return {"strategies": [SSWPStrategy]}
