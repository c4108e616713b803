"""``DockerEngine``: spr's Docker engine (hardened pooled containers over the Docker API)."""

from spr import DockerEngine

__all__ = ["DockerEngine"]
