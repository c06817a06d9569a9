"""The one exception type users see: a message that names the file, line or key at fault."""

from __future__ import annotations


class SkinTwinError(Exception):
    """A user-facing error: bad input, bad configuration, or a gate that must stop the run."""
