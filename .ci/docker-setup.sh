#!/usr/bin/env bash
# Install and start Docker for spr's Docker tests, register gVisor (runsc) where it
# installs, and build the runtime image with `cargo xtask image`.
# Idempotent; for a fresh Debian 12 machine, as root. Usage: bash .ci/docker-setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "docker-setup: $*" >&2; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v tar >/dev/null 2>&1 || missing+=(tar)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# gVisor is optional: its tests run where it installs.
if ! command -v runsc >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runsc >/dev/null 2>&1 \
    || log "runsc is not installable here; the gVisor test will be skipped"
fi

# Register runsc with the flags that work on these machines (no KVM; the network stack
# is off because containers run with --network none anyway).
if command -v runsc >/dev/null 2>&1; then
  mkdir -p /etc/docker
  python3 - <<'PY'
import json, os, shutil
path = "/etc/docker/daemon.json"
conf = {}
if os.path.exists(path):
    with open(path) as f:
        text = f.read().strip()
    conf = json.loads(text) if text else {}
want = {"path": shutil.which("runsc"), "runtimeArgs": ["--platform=ptrace", "--network=none"]}
if conf.get("runtimes", {}).get("runsc") != want:
    conf.setdefault("runtimes", {})["runsc"] = want
    with open(path, "w") as f:
        json.dump(conf, f, indent=2)
PY
fi

# A daemon whose docker0 bridge was deleted under it (for example by another dockerd
# started with `--bridge none`) cannot build images: restart it so it recreates docker0.
if docker info >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 && ! ip link show docker0 >/dev/null 2>&1 \
  && [[ -f /var/run/docker.pid ]]; then
  log "docker0 is missing: restarting dockerd"
  kill "$(cat /var/run/docker.pid)" || true
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 || break; sleep 0.5; done
fi
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  mkdir -p /var/log
  nohup dockerd --pidfile /var/run/docker.pid >/var/log/spr-dockerd.log 2>&1 &
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { tail -n 30 /var/log/spr-dockerd.log >&2; log "dockerd did not start"; exit 1; }
elif command -v runsc >/dev/null 2>&1 && ! docker info --format '{{json .Runtimes}}' | grep -q runsc; then
  # A running daemon reloads its runtimes on SIGHUP.
  log "reloading dockerd to register runsc"
  kill -HUP "$(cat /var/run/docker.pid 2>/dev/null || pidof dockerd | cut -d' ' -f1)" || true
  sleep 1
fi
log "dockerd is up ($(docker version --format '{{.Server.Version}}'))"

log "building the runtime image"
cargo xtask image

# The server image's tests start it with this checkout's spr mounted over the image's,
# so the quick debug build is enough here.
log "building the server image"
cargo xtask image --server --debug

# The remote-daemon tests need a second daemon (own socket, TCP on loopback, a context).
bash "$(dirname "$0")/docker-second-daemon.sh"
