"""A real headless Chromium with the network cut off, for pages a person would open.

Every host name resolves to nothing and any proxy is a closed loopback port, so a page that
needs a CDN renders as it would in a clinic without internet. `.ci/run` installs Chromium
(Debian's package); elsewhere a test that needs it skips and says how to get it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from skintwin.ops.processes import free_port

NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def browser() -> str:
    """The Chromium executable; in CI its absence is a failure, elsewhere a skip."""
    found = next((shutil.which(n) for n in NAMES if shutil.which(n)), None)
    if found:
        return found
    message = "no headless Chromium on PATH (apt-get install chromium; .ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _offline_flags(profile: str) -> list[str]:
    closed = free_port()  # nothing listens there: every proxied request is refused
    return [
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--proxy-server=http://127.0.0.1:{closed}",
        "--virtual-time-budget=15000",  # let the page's async rendering finish
    ]


def offline_dom(page: Path, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran, with no network; optionally a PNG of it."""
    exe = browser()
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, *_offline_flags(profile), "--dump-dom", page.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}")
        if screenshot is not None:
            shot = [exe, *_offline_flags(profile), f"--screenshot={screenshot}"]
            shot += ["--window-size=1200,2400", page.resolve().as_uri()]
            subprocess.run(shot, capture_output=True, timeout=120, check=True)
    return proc.stdout


def drawn(dom: str) -> str:
    """The DOM less its <script> and <style> elements: what the page drew, not the code
    that would draw it (a title inside a chart's spec is not a title on the screen)."""
    return re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S | re.I)
