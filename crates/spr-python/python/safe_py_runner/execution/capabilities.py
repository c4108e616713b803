"""What each backend enforces: both of spr's enforce every control the policy has."""

from __future__ import annotations

from spr._compat import slotted


@slotted(frozen=True)
class BackendCapabilities:
    supports_import_blocking: bool
    supports_builtin_blocking: bool
    supports_memory_limit: bool
    supports_timeout: bool


_KNOWN = {"local", "localengine", "docker", "dockerengine"}


def capabilities_for_backend(backend: str) -> BackendCapabilities:
    flag = backend in _KNOWN
    return BackendCapabilities(flag, flag, flag, flag)


def preflight_validate_backend_capabilities(backend: str) -> None:
    capabilities_for_backend(backend)
