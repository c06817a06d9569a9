"""Ultralytics' detection trainer, with the CPU's idle cores put to work.

On a CPU Ultralytics gives PyTorch `cpu_count − 1` threads (at most 8) and sets the
dataloader to no worker processes: images are decoded and augmented (mosaic, HSV, flips)
in the training process, between the model's steps, while at least one core waits. Here
the loader keeps up to `train.workers` processes, as many as PyTorch leaves cores idle, so
the next batch is made while the model steps: on 2 cores, 10 epochs at the default size
took 0.85–0.94× as long with one loader process as with none (3 alternating pairs; 6
epochs: 48.6 s against 56.6–57.3 s, two processes 51.4–51.8 s). On a GPU
the trainer is Ultralytics' own. A module-level class, so that Ultralytics' DDP launcher
can import it by name.
"""

from __future__ import annotations

import os

from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import DEFAULT_CFG, NUM_THREADS


def idle_cores() -> int:
    """Cores that PyTorch's CPU threads, as Ultralytics sets them, leave free."""
    return max(0, (os.cpu_count() or 1) - NUM_THREADS)


class Trainer(DetectionTrainer):
    """`DetectionTrainer`, keeping `workers` loader processes on a CPU, up to `idle_cores()`."""

    def __init__(self, cfg=DEFAULT_CFG, overrides=None, _callbacks=None) -> None:
        super().__init__(cfg, overrides, _callbacks)  # sets workers = 0 on a CPU
        if self.device.type == "cpu":
            requested = int((overrides or {}).get("workers", DEFAULT_CFG.workers))
            self.args.workers = min(requested, idle_cores())
