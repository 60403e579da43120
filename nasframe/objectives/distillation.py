"""Knowledge distillation from a teacher's logits supplied by the strategy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nasframe.objectives.base import Objective
from nasframe.step import SearchStep


class Distillation(Objective):
    """Soft cross-entropy between the student and ``step.extras["teacher_logits"]``.

    ``temperature`` softens both distributions (the loss is scaled by T^2, as in Hinton et al.). The
    term is absent when the strategy supplies no teacher for a step (e.g. during warm-up); strategies
    weigh it against cross-entropy through ``step.term_weights["distillation"]``.
    """

    def __init__(self, temperature: float = 1.0, weight: float = 1.0, stages: tuple[str, ...] = ("train",)) -> None:
        super().__init__(weight, stages)
        self.temperature = temperature

    def loss_terms(self, step: SearchStep) -> dict[str, torch.Tensor]:
        teacher = step.extras.get("teacher_logits")
        if teacher is None:
            return {}
        t = self.temperature
        log_student = F.log_softmax(step.logits(0) / t, dim=1)
        soft_teacher = F.softmax(teacher.detach().float() / t, dim=1)  # float32 as the student's (SearchStep.logits)
        return {"distillation": -(soft_teacher * log_student).sum(dim=1).mean() * t * t}
