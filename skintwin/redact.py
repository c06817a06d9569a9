"""Credentials never reach a log, an error, a Prefect state or the terminal.

Database and tracking URLs carry passwords (`postgresql+psycopg://user:secret@host/db`);
everything that shows a URL shows it through `mask_url`, and `run_main` passes every error
message through `mask_text`.
"""

from __future__ import annotations

import re

# scheme://user:password@  or  scheme://token@  (the part between // and @)
_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/@:\s]*)(?P<password>:[^/@\s]*)?@"
)
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pwd|secret|token|key)=)[^&\s]*")


def mask_url(url: str) -> str:
    """The URL with any password (and token-like query values) replaced by `***`."""
    return mask_text(url)


def mask_text(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by `***`."""

    def userinfo(m: re.Match) -> str:
        # user:password keeps the user; a lone user part may itself be a token
        return f"{m['scheme']}{m['user']}:***@" if m["password"] else f"{m['scheme']}***@"

    return _QUERY_SECRET.sub(r"\1***", _USERINFO.sub(userinfo, text))
