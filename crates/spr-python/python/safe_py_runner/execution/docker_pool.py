"""The original's pool rotation rule (spr's Docker engine applies the same one)."""

from __future__ import annotations

import time
from typing import Optional

from spr._compat import slotted

from .config import DockerPoolSettings


@slotted
class ContainerLease:
    container_name: str
    created_at: float
    last_used_at: float
    run_count: int = 0


def should_rotate(lease: ContainerLease, settings: DockerPoolSettings, now: Optional[float] = None) -> bool:
    """True once a container served ``max_runs`` runs or lived ``ttl_seconds`` since it
    was created (not since it was last used)."""
    now = time.time() if now is None else now
    return lease.run_count >= settings.max_runs or now - lease.created_at >= settings.ttl_seconds
