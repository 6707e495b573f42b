"""A Lightning callback that reports training steps to a progress bar (the adapt tab's)."""

from __future__ import annotations

from typing import Callable

import lightning as L

class StepProgress(L.Callback):
    """Calls ``report(global_step, max_steps)`` after every training step."""

    def __init__(self, report: Callable[[int, int], None]) -> None:
        self.report = report

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        """Report the step just finished."""
        self.report(int(trainer.global_step), int(trainer.max_steps))
