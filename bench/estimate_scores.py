"""How the estimate bench's points become the table's rows: error, rank correlation,
the truth inside the interval, and the alarms — a fall of the estimate flagged as
monitoring alerts it (`performance.estimate_window`, then `performance.corroborate`)."""

from __future__ import annotations

import numpy as np

from bench.common import Row

DROP = 0.10  # a true fall of this much below the test value must be flagged
CALM = 0.05  # a slice whose true figure fell less than this has nothing to flag
# flagged: the estimate more than `monitor.estimate_drop` below the same estimate on the
# test split (the slice's, else all); the trade-off printed beside the project's setting
OTHER_DROPS = (0.03, 0.05, 0.07, 0.08, 0.10)


def trade(found: list[dict], mode: str, metric: str, needs_drift: bool) -> str:
    """Alarms at each of OTHER_DROPS: "0.05 → 60 of 64 (false 44 of 153); ..."."""
    return "; ".join(
        "{} → {} of {} (false {} of {})".format(a, *flags(found, a, mode, metric, needs_drift))
        for a in OTHER_DROPS
    )


def flags(
    found: list[dict], alarm: float, mode: str, metric: str, needs_drift: bool = True
) -> tuple[int, ...]:
    """(true falls ≥ DROP flagged, such falls, calm slices flagged, calm slices); with
    `needs_drift`, a fall counts only in a batch whose drift check saw something move or
    could not compare everything (`performance.corroborate`; a point saved before the
    bench ran the check: as moved)."""
    from skintwin.monitoring.performance import fall

    def fell(p: dict, by: float) -> bool:
        return p["baseline"]["true"][metric] - p["true"][metric] >= by

    def flagged(p: dict) -> bool:
        fallen = fall(p["baseline"]["estimate"][metric]["value"], p[mode][metric]) > alarm
        seen = bool(p.get("moved", True)) or bool(p.get("unchecked"))
        return fallen and (not needs_drift or seen)

    dropped = [p for p in found if fell(p, DROP)]
    calm = [p for p in found if not fell(p, CALM)]
    return (sum(map(flagged, dropped)), len(dropped), sum(map(flagged, calm)), len(calm))


def rows(
    found: list[dict], alarm: float, mode: str, metric: str, label: str = "", needs: bool = True
) -> list[Row]:
    from scipy.stats import spearmanr

    true = np.array([p["true"][metric] for p in found])
    est = np.array([p[mode][metric] for p in found])
    mae = float(np.mean(np.abs(true - est)))
    rho = float(spearmanr(true, est).statistic)
    hit, dropped, false, calm = flags(found, alarm, mode, metric, needs)
    rate = 100 * hit / dropped if dropped else float("nan")
    name = f"{mode}: {metric}" + (f" ({label})" if label else "")
    held = {k: sum(p[k][metric][0] <= p["true"][metric] <= p[k][metric][1] for p in found)
            for k in ("interval", "window only")}  # fmt: skip
    return [
        Row(f"{name} truth inside the 95% interval (the window's bootstrap alone: "
            f"{held['window only']} of {len(found)})", held["interval"], f"of {len(found)}"),
        Row(f"{name} mean abs error ({len(found)} points)", mae, "", target="≤ 0.05",
            ok=mae <= 0.05),
        Row(f"{name} Spearman rho vs true", rho, "", target="≥ 0.8", ok=rho >= 0.8),
        Row(f"{name} drop ≥ {DROP} alarmed at {alarm} ({hit} of {dropped}; false "
            f"{false} of {calm})", rate, "%", target="≥ 90%",
            ok=bool(dropped) and rate >= 90),
    ]  # fmt: skip
