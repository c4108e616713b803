#!/usr/bin/env bash
# The curl examples of docs/HTTP.md, against a running `spr serve --http`.
#
#   SPR_TOKEN=$(head -c 24 /dev/urandom | base64) spr serve --http 127.0.0.1:8080 &
#   SPR_URL=http://127.0.0.1:8080 SPR_TOKEN=... examples/http/curl.sh
#
# SPR_URL defaults to http://127.0.0.1:8080; without SPR_TOKEN no Authorization is sent
# (right for a loopback server started without a token). A test runs this script.
set -euo pipefail

url=${SPR_URL:-http://127.0.0.1:8080}
auth=()
if [ -n "${SPR_TOKEN:-}" ]; then
  auth=(-H "Authorization: Bearer $SPR_TOKEN")
fi
# Every answer is JSON; print its status after it.
show=(-sS -w ' (HTTP %{http_code})\n')

echo '# health (no token needed)'
curl "${show[@]}" "$url/v1/health"

echo '# a run: code, input_data, and an id that comes back first'
curl "${show[@]}" ${auth[@]+"${auth[@]}"} -H 'Content-Type: application/json' \
  -d '{"id": "sqrt", "code": "import math\nprint(f\"computing the square root of {x}\")\nresult = math.sqrt(x)", "input_data": {"x": 81}}' \
  "$url/v1/runs"

echo '# a request may lower its profile'"'"'s timeout_seconds, memory_limit_mb and max_output_kb'
curl "${show[@]}" ${auth[@]+"${auth[@]}"} -H 'Content-Type: application/json' \
  -d '{"code": "while True: pass", "policy": {"timeout_seconds": 1}}' \
  "$url/v1/runs"

echo '# ... and never raise them (403, naming the key)'
curl "${show[@]}" ${auth[@]+"${auth[@]}"} -H 'Content-Type: application/json' \
  -d '{"code": "result = 1", "policy": {"memory_limit_mb": 4096}}' \
  "$url/v1/runs"

echo '# a session: an interpreter whose globals persist from run to run'
session=$(curl -sS ${auth[@]+"${auth[@]}"} -H 'Content-Type: application/json' \
  -d '{"policy": {"timeout_seconds": 5}, "ttl_seconds": 300}' "$url/v1/sessions" |
  sed -E 's/.*"session":"([^"]+)".*/\1/')
curl "${show[@]}" ${auth[@]+"${auth[@]}"} -H 'Content-Type: application/json' \
  -d '{"code": "import math\nx = 20"}' "$url/v1/sessions/$session/runs"
echo '# ... the next run sees x; value is its last expression'"'"'s'
curl "${show[@]}" ${auth[@]+"${auth[@]}"} -H 'Content-Type: application/json' \
  -d '{"id": 2, "code": "x + 1"}' "$url/v1/sessions/$session/runs"
echo '# ... closed (204)'
curl "${show[@]}" ${auth[@]+"${auth[@]}"} -X DELETE "$url/v1/sessions/$session"

echo '# metrics (Prometheus text)'
curl -sS ${auth[@]+"${auth[@]}"} "$url/metrics" | grep '^spr_runs_total'
