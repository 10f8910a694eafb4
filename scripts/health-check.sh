#!/usr/bin/env bash
# Checks a running rtae: GET /health (liveness), GET /ready (readiness) and GET /metrics (Prometheus text).
# One line per check; exit 0 when all pass, 1 otherwise.
#
# usage: scripts/health-check.sh [base-url]          (default http://127.0.0.1:8080)
# env:   RTAE_TOKEN   bearer token for /metrics when rtae runs with --read-tokens (not printed)
#        TIMEOUT_S    per-request timeout (default 5)
set -uo pipefail

URL=${1:-http://127.0.0.1:8080}
URL=${URL%/}
TIMEOUT_S=${TIMEOUT_S:-5}
FAILED=0
BODY=$(mktemp)
trap 'rm -f "$BODY"' EXIT

# get path [auth] -> sets CODE and fills $BODY
get() {
  local args=(-s -o "$BODY" -w '%{http_code}' -m "$TIMEOUT_S")
  if [ "${2:-}" = auth ] && [ -n "${RTAE_TOKEN:-}" ]; then args+=(-H "authorization: Bearer $RTAE_TOKEN"); fi
  CODE=$(curl "${args[@]}" "$URL$1" 2>/dev/null) || CODE=${CODE:-000}
}

report() { # name ok|fail detail
  printf '%-8s %-4s %s\n' "$1" "$2" "$3"
  [ "$2" = ok ] || FAILED=1
}

get /health
if [ "$CODE" = 200 ] && grep -q '"status":"ok"' "$BODY"; then
  report health ok "$URL/health 200"
else
  report health FAIL "$URL/health answered ${CODE}: $(head -c 200 "$BODY")"
fi

# 200 with status ready or degraded (a store failing, events still accepted); 503 = not ready
get /ready
STATUS=$(grep -o '"status":"[a-z_]*"' "$BODY" | head -1 | cut -d'"' -f4)
WATERMARK=$(grep -o '"watermark":[^,}]*' "$BODY" | head -1 | cut -d: -f2- | tr -d '"')
if [ "$CODE" = 200 ]; then
  report ready ok "$URL/ready 200 status=${STATUS:-?} watermark=${WATERMARK:-?}"
else
  report ready FAIL "$URL/ready answered ${CODE}: $(head -c 200 "$BODY")"
fi

get /metrics auth
if [ "$CODE" = 200 ] && grep -q '^# TYPE rtae_' "$BODY"; then
  report metrics ok "$URL/metrics 200, $(grep -c '^# TYPE ' "$BODY") metric families"
elif [ "$CODE" = 401 ] || [ "$CODE" = 403 ]; then
  report metrics FAIL "$URL/metrics answered $CODE: set RTAE_TOKEN to a read token"
else
  report metrics FAIL "$URL/metrics answered ${CODE} without rtae_ metrics"
fi

exit "$FAILED"
