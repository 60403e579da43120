"""The core's own plugin: it declares nasframe's built-in components exactly as a plugin package's
entry-point module declares its own, through the ``nasframe_components`` hook.

Every ``NASPluginManager`` registers this module first, under the name ``nasframe`` (as pytest
registers its built-in plugins before any installed one), so ``nasframe list`` and
``nasframe.plugins.installed_components()`` show the built-ins beside installed packages.
"""

from __future__ import annotations


def nasframe_components() -> dict[str, list[type]]:
    """The concrete classes the core offers, by kind. Abstract bases (``SearchStrategy``,
    ``Evaluator``, ...) are left out: they are for subclassing, not for configs."""
    # imported here: the plugin manager imports this module, and these modules import the manager
    from nasframe.data import CIFARDataModule, DigitsDataModule, NpzDataModule
    from nasframe.evaluators import TabularEvaluator, WeightSharingEvaluator
    from nasframe.export import OnnxExporter, SafetensorsExporter, TorchExportExporter
    from nasframe.objectives import BYOL, CrossEntropy, Distillation, SimCLR
    from nasframe.spaces.darts import DARTSSpace
    from nasframe.spaces.mbconv import MBConvSpace
    from nasframe.spaces.nb101 import NB101Space
    from nasframe.spaces.nb201 import NB201Space
    from nasframe.strategies import RandomSearch, RegularizedEvolution, SinglePathStrategy
    from nasframe.strategies.optuna import OptunaSearch  # importable without Optuna; fails clearly on use
    from nasframe.tabular import NB101Benchmark, NB201Benchmark

    return {
        "spaces": [NB201Space, NB101Space, DARTSSpace, MBConvSpace],
        "strategies": [SinglePathStrategy, RandomSearch, RegularizedEvolution, OptunaSearch],
        "evaluators": [TabularEvaluator, WeightSharingEvaluator],
        "objectives": [CrossEntropy, SimCLR, BYOL, Distillation],
        "exporters": [SafetensorsExporter, TorchExportExporter, OnnxExporter],
        "datamodules": [DigitsDataModule, NpzDataModule, CIFARDataModule],
        "benchmarks": [NB201Benchmark, NB101Benchmark],
    }
