"""The registry's commands: promote (and a human's --approve), lineage, history, rollback."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from skintwin.ops.cli_support import iso, print_json, project
from skintwin.project import ProjectPaths


def _promote(args: argparse.Namespace) -> None:
    from skintwin.errors import SkinTwinError
    from skintwin.registry import approval, promotion

    paths = project(args)
    if args.approve is None:
        print_json(promotion.gate(paths, promotion.register(paths)))
    elif not (args.reason or "").strip():
        raise SkinTwinError("promote --approve: say why with --reason (kept in the history)")
    else:
        print_json(approval.approve(paths, args.approve, args.reason))


def _registry(args: argparse.Namespace) -> tuple[ProjectPaths, str]:
    """The project and the registered model's name, with tracking configured."""
    from skintwin.params import load_params
    from skintwin.training.tracking import configure_tracking

    paths = project(args)
    configure_tracking(paths.root, create=False)
    return paths, args.model_name or load_params(paths.params).promote.model_name


def _lineage(args: argparse.Namespace) -> None:
    from skintwin.registry.lineage import lineage_card

    _, name = _registry(args)
    print(lineage_card(name, alias=args.alias, version=args.version))


def _history(args: argparse.Namespace) -> None:
    from skintwin.errors import SkinTwinError
    from skintwin.registry import aliases

    paths, name = _registry(args)
    log = aliases.history(paths.root)
    if args.verify:
        problems = aliases.verify(paths.root, name)
        if problems:
            raise SkinTwinError("registry history: " + "; ".join(problems))
        print(f"registry history intact: {log.count()} events; live aliases agree")
    elif args.at is not None:
        found = log.version_at(name, args.alias, args.at)
        print(f"{name}@{args.alias} at {iso(args.at)}: {f'v{found}' if found else 'not set'}")
    else:
        events = log.events(name)
        if not events:  # a misspelt name printed nothing and exited 0
            others = sorted({event.model for event in log.events()})
            if others:
                raise SkinTwinError(f"no alias of '{name}' has moved; the history holds: "
                                    f"{', '.join(others)}")  # fmt: skip
            print(f"no alias of '{name}' has moved yet")
        for event in events:
            print(event.line())


def _rollback(args: argparse.Namespace) -> None:
    from skintwin.registry import aliases

    paths, name = _registry(args)
    print(aliases.rollback(paths.root, name, args.to, args.reason).line())


def _when(text: str) -> float:
    """An ISO 8601 time (UTC unless it says otherwise) as Unix seconds (argparse type)."""
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        example = "2026-05-01T10:00Z"
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time ({example})") from None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def _version(text: str) -> str:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number (1, 2, ...)")
    return str(int(text))


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Register the commands on the main parser through its `add(name, handler, help)`."""
    pro = add("promote", _promote, "register the evaluated candidate and apply the gate")
    pro.add_argument("--approve", type=_version, help="a human promotes this version instead")
    pro.add_argument("--reason", help="with --approve: why (kept in the history)")
    lin = add("lineage", _lineage, "print a version's lineage card (default: the champion)")
    lin.add_argument("--alias", default="champion")
    lin.add_argument("--version")
    lin.add_argument("--model-name")
    hist = add("history", _history, "list every alias move; --at: who was champion then")
    hist.add_argument("--at", type=_when, help="an ISO time: the version the alias had then")
    hist.add_argument("--alias", default="champion")
    hist.add_argument("--verify", action="store_true", help="check the hash chain")
    hist.add_argument("--model-name")
    back = add("rollback", _rollback, "move champion back to an older version (an event)")
    back.add_argument("--to", required=True, type=_version, help="the older version")
    back.add_argument("--reason", required=True, help="why (kept in the history)")
    back.add_argument("--model-name")
