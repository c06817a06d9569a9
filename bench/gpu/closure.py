"""The distributions (name==version, as installed here) that the given requirements need
on a Python 3.12 Linux host, less those the host holds already (a file, one name a line):
what `pack.sh` carries to a GPU host that has PyTorch but not this project's stack."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HOST = {  # the markers' environment there
    "python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
    "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
    "implementation_name": "cpython", "platform_python_implementation": "CPython",
}  # fmt: skip


def closure(roots: list[str], present: set[str]) -> list[str]:
    wanted: dict[str, str] = {}
    seen: set[tuple] = set()

    def walk(req: Requirement) -> None:
        name = canonicalize_name(req.name)
        key = (name, tuple(sorted(req.extras)))
        if name in present or key in seen:
            return
        seen.add(key)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            sys.exit(f"{req.name}: not installed here, so its version is unknown")
        wanted.setdefault(name, dist.version)
        for raw in dist.requires or []:
            sub = Requirement(raw)
            extras = ("", *req.extras)
            if sub.marker is None or any(sub.marker.evaluate(HOST | {"extra": e}) for e in extras):
                walk(sub)

    for root in roots:
        walk(Requirement(root))
    return [f"{n}=={v}" for n, v in wanted.items()]


if __name__ == "__main__":
    lines = Path(sys.argv[1]).read_text().splitlines()
    present = {canonicalize_name(x) for x in lines if x.strip() and not x.startswith("#")}
    print("\n".join(closure(sys.argv[2:], present)))
