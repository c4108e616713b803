"""``LocalEngine``: spr's local engine (warm sandboxed workers, a fresh process per run)."""

from spr import LocalEngine

__all__ = ["LocalEngine"]
