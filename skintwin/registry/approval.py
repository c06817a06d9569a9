"""What needs a human: the change-control plan's clauses a candidate breaks (the gate then
holds it), and a human's approval that promotes a version over the plan or the gate, with
who and why in the registry history and on the model card."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import yaml

from skintwin.errors import SkinTwinError
from skintwin.params import load_params
from skintwin.project import ProjectPaths
from skintwin.registry import aliases, card, change_control, client
from skintwin.registry.lineage import trained_elsewhere
from skintwin.training.tracking import configure_tracking, unreachable_as_error

log = logging.getLogger(__name__)


def held(paths: ProjectPaths, tags: dict, version: str, champ) -> list[str]:
    """What in the candidate (its version `tags`) differs from the champion beyond the
    plan's automatic clauses, and which of the gate's settings changed since the candidate
    was registered (the gate applies today's)."""
    if champ is None or str(champ.version) == str(version):
        return []
    plan = change_control.Plan.load(paths.root / change_control.FILE)
    clauses = change_control.violations(plan, champ.tags, tags)
    now = yaml.safe_load(paths.params.read_text(encoding="utf-8")) or {}
    clauses += change_control.changed_since(plan, tags, now)
    # its params are this project's, not what trained it: nothing can be compared, either
    # way round (a champion from elsewhere records today's params as its own)
    if plan is not None and trained_elsewhere(tags):
        clauses.append("weights trained elsewhere (clause human.external_weights)")
    elif plan is not None and trained_elsewhere(champ.tags):
        clauses.append(
            f"the champion v{champ.version}'s weights were trained elsewhere: what changed "
            "cannot be read from its lineage (clause human.external_weights)"
        )
    return list(dict.fromkeys(clauses))  # a cut lineage is named once, not once per check


def approve(paths: ProjectPaths, version: str, reason: str) -> dict:
    """A human promotes `version` over the plan or the gate; the history records who, why."""
    with unreachable_as_error(configure_tracking(paths.root, create=False)):
        name = load_params(paths.params).promote.model_name
        champ = client.alias_version(name, client.CHAMPION)
        if champ is not None and str(champ.version) == str(version):
            raise SkinTwinError(f"promote --approve {version}: it is the champion already")
        clauses = held(paths, client.get_version(name, version).tags, version, champ)
        aliases.fetchable(name, version, "promote --approve")
        record = {"approved_over": champ.version if champ else None, "change_control": clauses}
        event = aliases.move(paths.root, name, client.CHAMPION, version, "approve", reason, record)
        client.client().set_model_version_tag(
            name, version, "gate.approved", f"{event.actor}: {reason}"[:4900]
        )
        when = datetime.fromtimestamp(event.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        over = record["approved_over"]
        approval = {"by": event.actor, "reason": reason, "time": when, "over": over and str(over)}
        folder = paths.model_cards / f"v{version}"
        if card.record_approval(folder, approval) is not None:  # the card says so too
            client.log_model_card(name, version, folder)
    log.info("version %s approved as champion by %s", version, event.actor)
    return {"version": version, "promote": True, "approved_by": event.actor, "reason": reason}
