#!/usr/bin/env bash
# Start a second dockerd for the remote-daemon tests: its own unix socket, TCP on
# 127.0.0.1:23750, its own data-root, exec-root and pidfile; load the runtime image into
# it; and create the Docker context `spr-second` pointing at it.
# Idempotent; run after .ci/docker-setup.sh. Usage: bash .ci/docker-second-daemon.sh
set -euo pipefail

RUN_DIR=/run/spr-docker2
SOCK="$RUN_DIR/docker.sock"
TCP=127.0.0.1:23750
IMAGE="${SPR_IMAGE:-spr-runtime:latest}"
log() { echo "docker-second-daemon: $*" >&2; }

mkdir -p "$RUN_DIR" /var/lib/spr-docker2
command -v ip >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null; }
if ! docker -H "unix://$SOCK" info >/dev/null 2>&1; then
  log "starting the second dockerd on $SOCK and tcp://$TCP"
  # Its own bridge and no iptables: it must not touch the first daemon's docker0 (with
  # `--bridge none` dockerd deletes docker0) or its NAT rules. The bridge gets a
  # link-local-style private /24 that nothing outside this machine ever sees.
  if ! ip link show spr-docker2 >/dev/null 2>&1; then
    ip link add name spr-docker2 type bridge
    ip addr add 10.213.0.1/24 dev spr-docker2
    ip link set spr-docker2 up
  fi
  nohup dockerd \
    --host "unix://$SOCK" --host "tcp://$TCP" \
    --data-root /var/lib/spr-docker2 --exec-root "$RUN_DIR/exec" \
    --pidfile "$RUN_DIR/dockerd.pid" \
    --bridge spr-docker2 --iptables=false --ip-masq=false \
    >/var/log/spr-dockerd2.log 2>&1 &
  for _ in $(seq 1 120); do
    docker -H "unix://$SOCK" info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker -H "unix://$SOCK" info >/dev/null 2>&1 || { tail -n 30 /var/log/spr-dockerd2.log >&2; log "second dockerd did not start"; exit 1; }
fi

want=$(docker image inspect --format '{{.Id}}' "$IMAGE")
have=$(docker -H "unix://$SOCK" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
if [[ "$want" != "$have" ]]; then
  log "loading $IMAGE into the second daemon"
  docker save "$IMAGE" | docker -H "unix://$SOCK" load >/dev/null
fi

if ! docker context inspect spr-second >/dev/null 2>&1; then
  docker context create spr-second --docker "host=unix://$SOCK" >/dev/null
fi
log "second daemon ready: unix://$SOCK, tcp://$TCP, context spr-second"
