"""Helpers every `skintwin` command shares: the project, JSON output, times."""

from __future__ import annotations

import argparse
import json
import time

from skintwin.project import ProjectPaths


def project(args: argparse.Namespace) -> ProjectPaths:
    return ProjectPaths.find(args.project_dir)


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, default=str))


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
