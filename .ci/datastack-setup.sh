#!/usr/bin/env bash
# The common data stack (numpy, pandas, matplotlib, scipy from PyPI, pinned), in a venv of its
# own, for the tests that run real library code under spr's policies: the data stack under the
# default policy, figures coming back as PNG, preloaded modules.
#
# The venv's path is fixed so the tests find it without configuration; SPR_DATASTACK_VENV
# overrides it here and in the tests alike. Versions are pinned so a release on PyPI cannot
# change a green CI. Idempotent: a venv that already has every pin is left alone.
# Usage: bash .ci/datastack-setup.sh   (as root, after .ci/setup-base.sh)
set -euo pipefail

VENV="${SPR_DATASTACK_VENV:-/opt/spr-datastack}"
PINS=(numpy==2.2.6 pandas==2.2.3 matplotlib==3.10.3 scipy==1.15.3)
# The system interpreter, not the pyenv shim on PATH: the sandbox's view holds /usr.
PYTHON=/usr/bin/python3
log() { echo "datastack-setup: $*" >&2; }

have() {
  "$VENV/bin/python" - "${PINS[@]}" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if m.version(name) != want:
        sys.exit(1)
PY
}

# The engine locks the venv through this file beside it; a user who cannot create it
# there (the unprivileged CI user, in /opt) locks it opened for reading.
lock_file() {
  touch "$VENV.spr-lock"
  chmod 0644 "$VENV.spr-lock"
}

if have; then
  log "${PINS[*]} already in $VENV"
  lock_file
  exit 0
fi

if command -v uv >/dev/null 2>&1; then
  log "installing ${PINS[*]} into $VENV with uv"
  uv venv --quiet --allow-existing --python "$PYTHON" "$VENV"
  uv pip install --quiet --python "$VENV/bin/python" "${PINS[@]}"
else
  log "installing ${PINS[*]} into $VENV with python -m venv and pip"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
fi
# Everyone reads it: the sandbox tests also run as the unprivileged CI user.
chmod -R a+rX "$VENV"
lock_file

have || { log "the pins are still missing from $VENV"; exit 1; }
log "${PINS[*]} installed in $VENV"
