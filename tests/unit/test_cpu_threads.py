"""PyTorch's training threads on a CPU (every usable core unless the environment says),
and its precision (FP32)."""

from __future__ import annotations

import pytest

from skintwin.errors import SkinTwinError
from skintwin.model.trainer import cpu_threads, idle_cores, usable_cores


def test_every_usable_core_up_to_eight_by_default(monkeypatch) -> None:
    monkeypatch.delenv("SKINTWIN_TORCH_THREADS", raising=False)
    assert cpu_threads() == min(8, usable_cores())
    assert idle_cores() == usable_cores() - cpu_threads()


def test_the_environment_sets_the_threads(monkeypatch) -> None:
    monkeypatch.setenv("SKINTWIN_TORCH_THREADS", "3")
    assert cpu_threads() == 3
    assert idle_cores() == max(0, usable_cores() - 3)


@pytest.mark.parametrize("raw", ["0", "-1", "2.5", "many"])
def test_a_bad_setting_is_an_error_naming_it(monkeypatch, raw: str) -> None:
    monkeypatch.setenv("SKINTWIN_TORCH_THREADS", raw)
    with pytest.raises(SkinTwinError, match="SKINTWIN_TORCH_THREADS"):
        cpu_threads()


@pytest.mark.parametrize("requested", [True, "bf16", "fp16", False])
def test_a_cpu_trains_in_fp32_whatever_train_amp_says(requested) -> None:
    """On a CPU, Ultralytics' bfloat16 autocast raises and its FP16 mode is a no-op: FP32."""
    import torch

    from skintwin.model.trainer import amp_mode

    assert amp_mode(torch.device("cpu"), requested) is False
