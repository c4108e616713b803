//! DockerEngine for spr: a hardened, warm container pool over the Docker API (work in progress).
