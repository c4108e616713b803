#!/usr/bin/env bash
# The unprivileged user that `cargo xtask test` runs the sandbox tests as (besides root and
# `unshare --user --map-root-user`): creates it with a home and no login shell, installs
# newuidmap/newgidmap (Debian's uidmap) and gives it a subordinate uid/gid range in
# /etc/subuid and /etc/subgid, so the sandbox can map a whole range and not only its own uid.
# Idempotent; Debian 12, as root. Usage: bash .ci/users-setup.sh  (SPR_CI_USER overrides the name)
set -euo pipefail

USER_NAME="${SPR_CI_USER:-spr-ci}"
# 65536 ids, the shadow default (SUB_UID_COUNT): enough for a full 16-bit mapping inside.
COUNT=65536
# Never below shadow's SUB_UID_MIN; the root-run sandbox maps its workers to ids from
# 1,000,000,000 up, so a range allocated from here collides with neither.
MIN_BASE=100000
log() { echo "users-setup: $*" >&2; }

if ! command -v newuidmap >/dev/null 2>&1 || ! command -v newgidmap >/dev/null 2>&1; then
  log "installing uidmap (newuidmap, newgidmap)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq uidmap >/dev/null
fi
# setpriv (util-linux, essential on Debian) switches xtask to the user without PAM or a shell.
command -v setpriv >/dev/null 2>&1 || { log "setpriv (util-linux) is missing"; exit 1; }

if ! id -u "$USER_NAME" >/dev/null 2>&1; then
  log "creating user $USER_NAME"
  # An ordinary (non-system) account: that is the shape of a developer or a CI runner.
  # useradd may add subordinate ranges itself (login.defs); the check below covers both cases.
  useradd --create-home --user-group --shell /usr/sbin/nologin \
    --comment "spr CI, sandbox tests as an unprivileged user" "$USER_NAME"
fi
home=$(getent passwd "$USER_NAME" | cut -d: -f6)
if [[ ! -d "$home" ]]; then
  mkdir -p "$home"
  chown "$USER_NAME:$USER_NAME" "$home"
fi
chmod 0700 "$home"

touch /etc/subuid /etc/subgid
# The first free base above every range already given out in either file, so the uid and the
# gid range can be the same numbers and overlap nobody.
next_base() {
  awk -F: -v min="$MIN_BASE" '
    NF >= 3 && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ { end = $2 + $3; if (end > max) max = end }
    END { if (max < min) max = min; print max }' /etc/subuid /etc/subgid
}
has_range() { grep -qE "^${USER_NAME}:[0-9]+:[0-9]+$" "$1"; }
if ! has_range /etc/subuid || ! has_range /etc/subgid; then
  base=$(next_base)
  last=$((base + COUNT - 1))
  if ! has_range /etc/subuid; then
    log "subordinate uids $base-$last for $USER_NAME"
    usermod --add-subuids "$base-$last" "$USER_NAME"
  fi
  if ! has_range /etc/subgid; then
    log "subordinate gids $base-$last for $USER_NAME"
    usermod --add-subgids "$base-$last" "$USER_NAME"
  fi
fi

# The user runs are about unprivileged user namespaces, so the kernel must allow them:
# Debian's own switch (absent on kernels without Debian's patch; 1 is Debian's default) and
# Ubuntu 24.04's AppArmor restriction (GitHub's runners), which would leave the user
# without capabilities in its namespace. Neither file exists on a plain Debian 12 kernel.
for knob in kernel/unprivileged_userns_clone=1 kernel/apparmor_restrict_unprivileged_userns=0; do
  file="/proc/sys/${knob%=*}" want="${knob#*=}"
  if [[ -w "$file" && "$(cat "$file")" != "$want" ]]; then
    log "setting ${knob%=*} to $want (unprivileged user namespaces)"
    echo "$want" >"$file"
  fi
done

log "$USER_NAME: uid $(id -u "$USER_NAME"), home $home," \
  "subuid $(grep "^${USER_NAME}:" /etc/subuid | cut -d: -f2-), subgid $(grep "^${USER_NAME}:" /etc/subgid | cut -d: -f2-)"
