"""spr's own exceptions. Refused arguments are ``ValueError`` and ``TypeError``, as in the
original; these are for what only spr has: sessions."""

from __future__ import annotations


class SprError(Exception):
    """Base class of spr's own exceptions."""


class SessionError(SprError):
    """A session could not be opened, or cannot run a cell."""


class SessionLostError(SessionError):
    """The session's process was killed or died: its state is gone; open a new session."""


class TooManySessionsError(SessionError):
    """The engine's cap on open sessions is reached: close one, or wait."""


class SessionClosedError(SessionError):
    """The session was closed."""


# They are spr's public names: tracebacks and pickles say `spr.SessionLostError`.
for _cls in (SprError, SessionError, SessionLostError, TooManySessionsError, SessionClosedError):
    _cls.__module__ = "spr"
del _cls
