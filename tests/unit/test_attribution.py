"""The within-tone-group tests (`monitoring.attribution.within_groups`): their p-value."""

from __future__ import annotations

import numpy as np
import pytest

from skintwin.names import TONE_GROUPS
from tests.conftest import params_model
from tests.unit.test_embedding_drift import _frame


@pytest.mark.parametrize(
    ("num_method", "num_threshold"), [("ks", 0.01), ("wasserstein", 0.1), ("psi", 0.2)]
)
def test_within_group_tests_keep_their_own_p_value(
    base_params: dict, num_method: str, num_threshold: float
) -> None:
    """The columns' test may be a distance (its threshold no p-value): the within-group KS
    tests still run at `monitor.within_threshold`, and 20 calm windows stay calm."""
    from skintwin.monitoring.attribution import within_groups

    raw = {**base_params, "monitor": {**base_params["monitor"], "num_method": num_method}}
    raw["monitor"]["num_threshold"] = num_threshold
    monitor = params_model(raw).monitor
    rng = np.random.default_rng(7)
    even = dict.fromkeys(TONE_GROUPS, 1.0)
    reference = _frame(rng, 300, even)
    called = []
    for _ in range(20):
        within = within_groups(reference, _frame(rng, 200, even), monitor)
        assert within["threshold"] == pytest.approx(monitor.within_threshold / within["tests"])
        called += [c["column"] for c in within["changed"]]
    assert called == []
