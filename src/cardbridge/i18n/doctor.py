"""``cardbridge doctor``: check names, what was found, and how to fix it."""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {}
