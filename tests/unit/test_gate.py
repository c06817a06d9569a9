from __future__ import annotations

import pytest

from skintwin.params import PromoteParams
from skintwin.registry.gate import decide
from skintwin.training.evaluation import Evaluation

P = PromoteParams(
    model_name="m",
    metric="mAP50",
    floor=0.5,
    min_delta=0.01,
    min_group_images=5,
    group_tolerance=0.05,
)


def _eval(overall: float, groups: dict[str, tuple[int, float]] | None = None) -> Evaluation:
    per_group = {g: {"images": n, "mAP50": v} for g, (n, v) in (groups or {}).items()}
    return Evaluation({"mAP50": overall}, {}, per_group)


@pytest.mark.parametrize(
    ("candidate", "champion", "promote", "reason"),
    [
        (_eval(0.6), None, True, "no champion yet"),
        (_eval(0.4), None, False, "below the floor"),
        (_eval(0.45), _eval(0.3), False, "below the floor"),
        (_eval(0.705), _eval(0.70), False, "< min_delta"),
        (_eval(0.60), _eval(0.70), False, "< min_delta"),
        (_eval(0.80), _eval(0.70), True, "improves by +0.1000"),
        # overall rises, but one sizeable tone group regresses beyond tolerance
        (
            _eval(0.80, {"dark": (8, 0.50), "light": (8, 0.9)}),
            _eval(0.70, {"dark": (8, 0.70), "light": (8, 0.7)}),
            False,
            "tone group 'dark' (8 images) drops",
        ),
        # the same drop in a group with too few images is not gated
        (_eval(0.80, {"dark": (3, 0.50)}), _eval(0.70, {"dark": (3, 0.70)}), True, "improves"),
        # a drop within tolerance passes
        (
            _eval(0.80, {"dark": (8, 0.66)}),
            _eval(0.70, {"dark": (8, 0.70)}),
            True,
            "no tone group drops",
        ),
    ],
)
def test_gate_branches(
    candidate: Evaluation, champion: Evaluation | None, promote: bool, reason: str
) -> None:
    d = decide(candidate, champion, P)
    assert d.promote is promote
    assert any(reason in r for r in d.reasons), d.reasons


def test_group_deltas_recorded() -> None:
    d = decide(_eval(0.8, {"tan": (6, 0.8)}), _eval(0.7, {"tan": (6, 0.7)}), P)
    assert d.group_deltas == {"tan": pytest.approx(0.1)}
    assert d.as_dict()["champion"] == 0.7
