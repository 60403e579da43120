"""Objectives: each contributes named loss terms through the ``nasframe_loss_terms`` hook."""

from nasframe.objectives.base import Objective
from nasframe.objectives.distillation import Distillation
from nasframe.objectives.self_supervised import BYOL, SimCLR
from nasframe.objectives.supervised import CrossEntropy

__all__ = ["BYOL", "CrossEntropy", "Distillation", "Objective", "SimCLR"]
