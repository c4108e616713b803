"""Small helpers that keep the package importable on every Python it supports (3.9+)."""

from __future__ import annotations

import dataclasses
import sys


def slotted(cls=None, **kwargs):
    """``dataclass(slots=True)`` where Python has it (3.10+), a plain dataclass before."""
    if sys.version_info >= (3, 10):
        kwargs.setdefault("slots", True)

    def wrap(c):
        return dataclasses.dataclass(c, **kwargs)

    return wrap if cls is None else wrap(cls)
