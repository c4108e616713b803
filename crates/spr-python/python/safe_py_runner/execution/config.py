"""Docker settings and records, as the original's ``execution.config`` named them."""

from __future__ import annotations

import hashlib
import os
from typing import Iterable, List, Optional

from spr import CleanupSummary, ContainerInfo, ImageInfo
from spr import _native
from spr._compat import slotted

#: spr's runtime image (built by ``cargo xtask image``) takes the place of the original's.
DEFAULT_DOCKER_IMAGE = "spr-runtime:latest"
LOCAL_RUNTIME_IMAGE = DEFAULT_DOCKER_IMAGE


@slotted(frozen=True)
class DockerPoolSettings:
    pool_size: int
    max_runs: int
    ttl_seconds: int
    acquire_timeout: int


def default_pool_settings(timeout_seconds: int) -> DockerPoolSettings:
    return DockerPoolSettings(
        pool_size=min(os.cpu_count() or 1, 4),
        max_runs=25,
        ttl_seconds=600,
        acquire_timeout=max(1, int(timeout_seconds)) + 2,
    )


def validate_pinned_packages(packages: Optional[Iterable[str]]) -> List[str]:
    return _native.validate_pinned_packages(list(packages or ()))


def env_hash(*, python_version: str, packages: Iterable[str], namespace: Optional[str] = None) -> str:
    text = f"{python_version}|{namespace or ''}|{'|'.join(packages)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


__all__ = [
    "CleanupSummary",
    "ContainerInfo",
    "DEFAULT_DOCKER_IMAGE",
    "DockerPoolSettings",
    "ImageInfo",
    "LOCAL_RUNTIME_IMAGE",
    "default_pool_settings",
    "env_hash",
    "validate_pinned_packages",
]
