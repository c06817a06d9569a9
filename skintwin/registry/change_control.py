"""The change-control plan (`change_control.yaml`): which differences between a candidate
and the champion the gate may promote on its own, and which need a human's approval.

The differences are read from the versions' lineage (params, class list, tone thresholds),
so they are what really produced each model. A difference named by a `human` clause, or by
no clause at all, holds the candidate back, and the reason names the clause.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

from skintwin.errors import SkinTwinError

FILE = "change_control.yaml"
_LINEAGE_ONLY = ("classes", "tone_floors")  # facts beside the params
UNREADABLE = "(lineage.params unreadable)"  # the fact a version with cut params records


@dataclass(frozen=True)
class Plan:
    automatic: dict[str, list[str]]  # clause -> key patterns
    human: dict[str, list[str]]

    @classmethod
    def load(cls, path: Path) -> Plan | None:
        """The plan at `path`; None when the project has none (every change automatic)."""
        if not path.is_file():
            return None
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise SkinTwinError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        plan = {}
        for side in ("automatic", "human"):
            clauses = doc.get(side) or {}
            bad = [k for k, v in clauses.items() if not isinstance(v, list)] if isinstance(
                clauses, dict
            ) else [side]  # fmt: skip
            if bad:
                raise SkinTwinError(f"{path}: {side}.{bad[0]} must be a list of param keys")
            plan[side] = {str(k): [str(p) for p in v] for k, v in clauses.items()}
        return cls(**plan)

    def clause(self, key: str) -> tuple[str, str]:
        """("human" | "automatic", clause name) for a changed key; unlisted keys: human."""
        for side in ("human", "automatic"):
            for name, patterns in getattr(self, side).items():
                if any(fnmatchcase(key, p) for p in patterns):
                    return side, name
        return "human", "unlisted"


def _flat(node: object, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict) and node:
        out: dict[str, object] = {}
        for k, v in node.items():
            out |= _flat(v, f"{prefix}{k}.")
        return out
    return {prefix.rstrip("."): node}


def model_facts(tags: dict[str, str]) -> dict[str, object]:
    """The dotted facts a version's lineage tags record: params, classes, tone floors."""
    try:
        facts = _flat(json.loads(tags.get("lineage.params") or "{}"))
    except json.JSONDecodeError:  # cut (at MLflow 2's tag limit) or damaged: nothing known
        facts = {UNREADABLE: f"{len(tags['lineage.params'])} characters"}
    for key in _LINEAGE_ONLY:
        if f"lineage.{key}" in tags:
            facts[key] = tags[f"lineage.{key}"]
    return facts


def violations(plan: Plan | None, champion: dict[str, str], candidate: dict[str, str]) -> list:
    """One line per difference (in the versions' tags) that needs a human, naming its clause."""
    if plan is None:
        return []
    old, new = model_facts(champion), model_facts(candidate)
    out = _unreadable(("champion", old), ("candidate", new))
    if out:  # two cut params read alike: compared, they would pass any change unseen
        return out
    for key in sorted(set(old) | set(new)):
        if key in _LINEAGE_ONLY and key not in old:  # a champion from before they were kept
            continue
        if old.get(key) != new.get(key):
            side, name = plan.clause(key)
            if side == "human":
                shown = f"{old.get(key, '(absent)')} → {new.get(key, '(absent)')}"
                out.append(f"{key} {shown} (clause human.{name})")
    return out


GATE_SETTINGS = ("promote.*", "evaluate.*")  # what the gate applies each time it runs


def changed_since(plan: Plan | None, tags: dict[str, str], params_now: dict) -> list[str]:
    """The gate's own settings (`GATE_SETTINGS`) that differ between the version's lineage
    (the params at its registration) and `params_now`, where the plan gives them to a human.
    A version whose first gate could not compare it is gated again later, with the settings
    of that day: loosened since, they would pass it by a rule the plan reserves to a human.
    Nothing for a version registered without its params."""
    if plan is None or "lineage.params" not in tags:
        return []
    then, now = model_facts(tags), _flat(params_now)
    out = _unreadable(("candidate", then))
    if out:
        return out
    for key in sorted(set(then) | set(now)):
        if not any(fnmatchcase(key, p) for p in GATE_SETTINGS) or then.get(key) == now.get(key):
            continue
        side, name = plan.clause(key)
        if side == "human":
            shown = f"{then.get(key, '(absent)')} → {now.get(key, '(absent)')}"
            out.append(f"{key} {shown} since it was registered (clause human.{name})")
    return out


def _unreadable(*sides: tuple[str, dict]) -> list[str]:
    """A line for each version whose lineage params cannot be read: it needs a human."""
    return [
        f"the {who}'s lineage params are unreadable ({facts[UNREADABLE]}): "
        "nothing can be compared (needs a human)"
        for who, facts in sides
        if UNREADABLE in facts
    ]
