"""LightningModules that train the core model, and the trainer they share.

* :class:`PriorSystem`: the prior from multi-view supervision (Live3D's recipe);
* :class:`DistillSystem` / :class:`AdaptSystem`: full distillation and norm-only adaptation of the
  editor, one shared training step and loss;
* :class:`FrozenOutputCache`: what frozen networks computed for a training pair, reused at its later steps;
* :class:`~pe3d.systems.teacher_store.RefinedTeacherStore`: the refined teacher's triplanes on disk, reused by
  later runs on the same pairs;
* :func:`build_trainer` / :class:`TrainerConfig`: the Lightning trainer of every ``pe3d fit``.

Importing this package imports Lightning; inference (:mod:`pe3d.pipeline`) never does.
"""

from pe3d.systems.editing import AdaptSystem, DistillSystem, EditSystemConfig
from pe3d.systems.frozen_cache import FrozenOutputCache
from pe3d.systems.prior import PriorSystem, PriorSystemConfig
from pe3d.systems.runner import TrainerConfig, build_trainer

__all__ = ["AdaptSystem", "DistillSystem", "EditSystemConfig", "FrozenOutputCache", "PriorSystem", "PriorSystemConfig", "TrainerConfig",
           "build_trainer"]
