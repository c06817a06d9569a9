"""Ultralytics' detection trainer, with every CPU core put to work.

On a CPU Ultralytics gives PyTorch `cpu_count − 1` threads (at most 8) and sets the
dataloader to no worker processes, so on a small machine one core waits through the
whole of training. Here PyTorch gets every usable core (at most 8, Ultralytics' own cap)
and the loader keeps up to `train.workers` processes on the cores left over, none below 9
cores; `SKINTWIN_TORCH_THREADS`, when set, sets PyTorch's threads instead. On this project's
2-core machine, 6 epochs at the default size (360 images, 192 px) in two alternating
rounds: one thread and no loader process (Ultralytics' setting) 52.2 and 50.0 s; one thread
and one loader 56.8 and 49.7 s; two threads and one loader 34.3 and 38.7 s; two threads and
no loader 32.9 and 29.3 s (0.61×). On a GPU the trainer is Ultralytics' own, with one
change: mixed precision (`train.amp`) is bfloat16. Ultralytics' FP16 mode first checks the
GPU by predicting with yolo26n.pt, which it downloads: never, offline. A module-level class,
so that Ultralytics' DDP launcher can import it by name.
"""

from __future__ import annotations

import os

import torch
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import DEFAULT_CFG

MAX_CPU_THREADS = 8  # Ultralytics' cap: more threads than this hardly speed a small model


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS says, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_threads() -> int:
    """PyTorch's threads for training on a CPU: `SKINTWIN_TORCH_THREADS` when set (e.g. for
    processes that share the cores), else every usable core, at most 8. Not
    `OMP_NUM_THREADS`: importing Ultralytics sets that to 1 when it is unset."""
    from skintwin.errors import SkinTwinError
    from skintwin.io import env_number

    threads = env_number("SKINTWIN_TORCH_THREADS", min(MAX_CPU_THREADS, usable_cores()), 1, 256)
    if threads != int(threads):
        raise SkinTwinError(f"SKINTWIN_TORCH_THREADS: {threads:g} is not a whole number")
    return int(threads)


def idle_cores() -> int:
    """Cores that PyTorch's training threads leave free for loader processes."""
    return max(0, usable_cores() - cpu_threads())


def amp_mode(device: torch.device, requested) -> str | bool:
    """Ultralytics' `amp` for `train.amp` on `device`: "bf16" on a CUDA GPU when asked (it
    needs no GradScaler and no downloaded check), else False (FP32; a CPU always)."""
    from skintwin.errors import SkinTwinError

    if device.type != "cuda" or requested in (False, "fp32"):
        return False
    if not torch.cuda.is_bf16_supported(including_emulation=False):
        name = torch.cuda.get_device_name(device)
        raise SkinTwinError(
            f"train.amp: {name} has no native bfloat16 (compute capability 8.0 or newer "
            "needed); set train.amp: false to train in FP32"
        )
    return "bf16"


class Trainer(DetectionTrainer):
    """`DetectionTrainer`; on a CPU, PyTorch on `cpu_threads()` and up to `workers` loader
    processes on the `idle_cores()`; on a GPU, `amp_mode()`."""

    def __init__(self, cfg=DEFAULT_CFG, overrides=None, _callbacks=None) -> None:
        super().__init__(cfg, overrides, _callbacks)  # sets 1 thread less, no workers on a CPU
        self.args.amp = amp_mode(self.device, self.args.amp)
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads())
            requested = int((overrides or {}).get("workers", DEFAULT_CFG.workers))
            self.args.workers = min(requested, idle_cores())
