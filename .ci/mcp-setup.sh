#!/usr/bin/env bash
# The official MCP Python SDK (`mcp` from PyPI), in a venv of its own, for the `spr mcp` tests
# (crates/spr-cli/tests/mcp.rs runs crates/spr-cli/tests/mcp/client.py with it).
#
# The venv's path is fixed so the tests find it without configuration; SPR_MCP_SDK_VENV
# overrides it here and in the tests alike. The version is pinned: the tests check what the
# SDK sends and accepts, and a new SDK release must not change that under a green CI.
# Idempotent: a venv that already has the pinned version is left alone.
# Usage: bash .ci/mcp-setup.sh   (as root, after .ci/setup-base.sh)
set -euo pipefail

VENV="${SPR_MCP_SDK_VENV:-/opt/spr-mcp-sdk}"
PIN="mcp==2.3.0"
WANT="${PIN#*==}"
# The system interpreter, not the pyenv shim on PATH (slow to start, and not on CI's PATH).
PYTHON=/usr/bin/python3
log() { echo "mcp-setup: $*" >&2; }

have() {
  "$VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("mcp") != sys.argv[1])' "$WANT" 2>/dev/null
}

if have; then
  log "$PIN already in $VENV"
  exit 0
fi

if command -v uv >/dev/null 2>&1; then
  log "installing $PIN into $VENV with uv"
  uv venv --quiet --allow-existing --python "$PYTHON" "$VENV"
  uv pip install --quiet --python "$VENV/bin/python" "$PIN"
else
  log "installing $PIN into $VENV with python -m venv and pip"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$PIN"
fi

have || { log "$PIN is still missing from $VENV"; exit 1; }
log "$PIN installed in $VENV"
