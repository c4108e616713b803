"""``DockerEngine``: spr's Docker engine (hardened pooled containers over the Docker API),
naming its containers as the original did."""

from __future__ import annotations

from typing import Any

import spr

__all__ = ["DockerEngine"]


class DockerEngine(spr.DockerEngine):
    """:class:`spr.DockerEngine` whose containers are named ``safe-py-runner-...``."""

    __slots__ = ()

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("container_prefix", "safe-py-runner")
        super().__init__(**kwargs)
