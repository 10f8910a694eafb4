#!/usr/bin/env bash
# Smoke test of the compiled binary: start dist/rtae with embedded defaults in a temporary data dir,
# ingest a batch, query it back, stop it with SIGTERM and check that it exits cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-dist/rtae}
DIR=$(mktemp -d)
PORT=${SMOKE_PORT:-18480}
cleanup() { [ -n "${PID:-}" ] && kill -9 "$PID" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT

"$BIN" version
"$BIN" serve --data-dir "$DIR" --port "$PORT" --host 127.0.0.1 --log-level warn &
PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null

NOW=$(($(date +%s) * 1000))
BODY=$(printf '%s\n' \
  "{\"eventId\":\"smoke-1\",\"type\":\"page_view\",\"timestamp\":$NOW,\"userId\":\"u1\",\"sessionId\":\"s1\",\"loadTimeMs\":420}" \
  "{\"eventId\":\"smoke-2\",\"type\":\"purchase\",\"timestamp\":$NOW,\"userId\":\"u1\",\"sessionId\":\"s1\",\"items\":[{\"productId\":\"p1\",\"price\":12.5,\"quantity\":2}]}" \
  "{\"eventId\":\"smoke-3\",\"type\":\"teleport\",\"timestamp\":$NOW}")
RES=$(curl -s -w ' %{http_code}' -H 'content-type: application/x-ndjson' --data-binary "$BODY" "http://127.0.0.1:$PORT/api/events")
echo "ingest: $RES"
case "$RES" in *'"accepted":2'*' 202') ;; *) echo "unexpected ingest answer"; exit 1 ;; esac

FROM=$((NOW - 60000)); TO=$((NOW + 60000))
for _ in $(seq 1 50); do
  SUM=$(curl -sf "http://127.0.0.1:$PORT/api/metrics/summary?from=$FROM&to=$TO")
  case "$SUM" in *'"revenue":25,'*) break ;; esac
  sleep 0.1
done
echo "summary: $SUM"
case "$SUM" in *'"total":2'*'"revenue":25,'*'"orders":1'*) ;; *) echo "summary does not show the ingested events"; exit 1 ;; esac

# assets embedded in the binary: dashboard, its scripts, Swagger UI, tracker
for path in / /assets/htmx.min.js /assets/sse.js /assets/app.css /swagger /swagger/json /t.js /metrics; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT$path")
  [ "$code" = 200 ] || { echo "GET $path answered $code"; exit 1; }
done
curl -s "http://127.0.0.1:$PORT/metrics" | grep -q '^rtae_ingest_events_total{result="accepted"} 2' || { echo "metrics do not count the ingest"; exit 1; }
# a live stream answers with a snapshot
curl -s -m 2 -N "http://127.0.0.1:$PORT/api/stream?topics=overview" > "$DIR/stream.txt" || true
grep -q '^event: snapshot' "$DIR/stream.txt" || { echo "no SSE snapshot"; exit 1; }

kill -TERM "$PID"
wait "$PID"
STATUS=$?
PID=
[ "$STATUS" -eq 0 ] || { echo "rtae exited with $STATUS after SIGTERM"; exit 1; }
echo "binary smoke test passed"
