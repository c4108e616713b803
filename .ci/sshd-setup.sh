#!/usr/bin/env bash
# An sshd on 127.0.0.1:2222 for the SSH remote-daemon test, with a generated key
# authorised for root and the host key in root's known_hosts (the engine keeps ssh's
# host-key checking on). Idempotent; Debian 12, as root. Usage: bash .ci/sshd-setup.sh
set -euo pipefail

PORT=2222
KEY=/root/.ssh/spr_test_ed25519
CONF=/etc/ssh/spr_sshd_config
PIDFILE=/run/spr-sshd.pid
log() { echo "sshd-setup: $*" >&2; }

if ! command -v sshd >/dev/null 2>&1 && [[ ! -x /usr/sbin/sshd ]] || ! command -v ssh >/dev/null 2>&1; then
  log "installing openssh"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null
fi
ssh-keygen -A >/dev/null
mkdir -p /root/.ssh /run/sshd
chmod 700 /root/.ssh
[[ -f "$KEY" ]] || ssh-keygen -q -t ed25519 -N '' -C spr-test -f "$KEY"
touch /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
grep -qF "$(cut -d' ' -f2 "$KEY.pub")" /root/.ssh/authorized_keys || cat "$KEY.pub" >>/root/.ssh/authorized_keys

cat >"$CONF" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile $PIDFILE
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
AllowStreamLocalForwarding yes
UsePAM no
CONF

if ! { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }; then
  log "starting sshd on 127.0.0.1:$PORT"
  /usr/sbin/sshd -f "$CONF"
  for _ in $(seq 1 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
    sleep 0.1
  done
fi

if ! ssh-keygen -F "[127.0.0.1]:$PORT" >/dev/null 2>&1; then
  ssh-keyscan -p "$PORT" -t ed25519 127.0.0.1 2>/dev/null >>/root/.ssh/known_hosts
fi
ssh -i "$KEY" -p "$PORT" -o BatchMode=yes -o IdentitiesOnly=yes root@127.0.0.1 true
log "sshd ready on 127.0.0.1:$PORT, key $KEY"
