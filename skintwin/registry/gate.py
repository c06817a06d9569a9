"""The promotion gate: may a candidate replace the champion? Pure logic, no I/O.

Rules (DESIGN: Model registry), all on the same test split evaluated now:
1. the candidate's primary metric reaches the absolute floor;
2. with a champion: it improves on the champion's by at least `min_delta`;
3. with a champion: no skin-tone group with at least `min_group_images` test images drops
   by more than `group_tolerance`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from skintwin.params import PromoteParams
from skintwin.training.evaluation import Evaluation


@dataclass
class Decision:
    promote: bool
    reasons: list[str]
    metric: str
    candidate: float
    champion: float | None
    group_deltas: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def decide(candidate: Evaluation, champion: Evaluation | None, p: PromoteParams) -> Decision:
    """Apply the gate (champion None when there is none yet)."""
    value = float(candidate.overall[p.metric])
    reasons: list[str] = []
    ok = True
    if value < p.floor:
        ok = False
        reasons.append(f"{p.metric} {value:.4f} is below the floor {p.floor}")
    else:
        reasons.append(f"{p.metric} {value:.4f} reaches the floor {p.floor}")
    if champion is None:
        reasons.append("no champion yet: the floor is the only requirement")
        return Decision(ok, reasons, p.metric, value, None)
    base = float(champion.overall[p.metric])
    delta = value - base
    if delta < p.min_delta:
        ok = False
        reasons.append(
            f"{p.metric} {value:.4f} vs champion {base:.4f}: "
            f"improvement {delta:+.4f} < min_delta {p.min_delta}"
        )
    else:
        reasons.append(f"{p.metric} improves by {delta:+.4f} (min_delta {p.min_delta})")
    deltas: dict[str, float] = {}
    for group, theirs in sorted(champion.per_group.items()):
        ours = candidate.per_group.get(group)
        if ours is None or min(ours["images"], theirs["images"]) < p.min_group_images:
            continue
        d = float(ours[p.metric]) - float(theirs[p.metric])
        deltas[group] = round(d, 5)
        if d < -p.group_tolerance:
            ok = False
            reasons.append(
                f"tone group '{group}' ({ours['images']} images) drops {p.metric} "
                f"by {-d:.4f} > tolerance {p.group_tolerance}"
            )
    if deltas and all(d >= -p.group_tolerance for d in deltas.values()):
        reasons.append(
            f"no tone group drops more than {p.group_tolerance} "
            f"({len(deltas)} groups with ≥ {p.min_group_images} images)"
        )
    return Decision(ok, reasons, p.metric, value, base, deltas)
