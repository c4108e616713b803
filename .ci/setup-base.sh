#!/usr/bin/env bash
# Installs what the local-engine tests need: Python with venv and pip, uv, nextest, and
# curl (the HTTP tests run the documented curl examples).
set -euo pipefail

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
/usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

# uv from PyPI, into its own folder (no system site-packages touched).
if ! command -v uv >/dev/null; then
  /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --target /opt/spr-uv uv
  ln -sf /opt/spr-uv/bin/uv /usr/local/bin/uv
fi
uv --version

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
