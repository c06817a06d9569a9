"""The champion measured earlier in the flow is used only for the version it measured."""

from __future__ import annotations

import pytest

from skintwin.errors import SkinTwinError
from skintwin.registry.champion import Measured, measurement_of
from skintwin.training.evaluation import Evaluation


def _evaluation(value: float) -> Evaluation:
    return Evaluation({"images": 10, "mAP50": value}, {}, {})


def test_the_earlier_measurement_of_the_same_version_is_used() -> None:
    measured = Measured("3", _evaluation(0.71))
    assert measurement_of(None, None, "3", measured).evaluation.overall["mAP50"] == 0.71


def test_an_earlier_failure_of_the_same_version_is_the_gates_error() -> None:
    measured = Measured("3", None, "champion v3 could not be evaluated (OSError)")
    with pytest.raises(SkinTwinError, match="could not be evaluated"):
        measurement_of(None, None, "3", measured)


def test_another_version_is_measured_again(monkeypatch) -> None:
    from skintwin.registry import champion

    asked = []
    monkeypatch.setattr(champion, "evaluate", lambda paths, params, v: asked.append(v) or 0)
    measurement_of(None, None, "4", Measured("3", _evaluation(0.71)))
    measurement_of(None, None, "4", None)
    assert asked == ["4", "4"]
