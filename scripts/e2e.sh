#!/usr/bin/env bash
# End-to-end check of the distributed mode on the local services (scripts/services.sh): `rtae migrate` into a
# fresh keyspace, two `rtae serve` on a fresh topic / consumer group / Redis prefix, `rtae produce` straight
# into Kafka, both instances counting every produced event, an SSE delta on one after a POST through the
# other, scripts/health-check.sh on both, SIGTERM with exit 0 each, then everything it made is removed.
# Exits non-zero with a message naming the failed step; bounded to about 3 minutes.
#
# usage: scripts/e2e.sh            env: RTAE_BIN (command to run rtae; default: dist/rtae when it is newer
#                                       than src/, else node_modules/.bin/bun src/main.ts), E2E_COUNT (4321)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUN="$ROOT/node_modules/.bin/bun"
COUNT=${E2E_COUNT:-4321}
PARTITIONS=6
STARTED=$SECONDS

if [ -n "${RTAE_BIN:-}" ]; then
  read -r -a RTAE <<<"$RTAE_BIN"
elif [ -x dist/rtae ] && [ -z "$(find src package.json -newer dist/rtae -print -quit)" ]; then
  RTAE=("$ROOT/dist/rtae")
else
  RTAE=("$BUN" "$ROOT/src/main.ts")
fi

RUN="e2e_$(date +%s)_$$"
TOPIC="rtae.$RUN"
GROUP="g.$RUN"
KEYSPACE="rtae_$RUN"
PREFIX="$RUN:"
WORK=$(mktemp -d)
PIDS=()
LAST=

step() { printf '[e2e %3ss] %s\n' "$((SECONDS - STARTED))" "$*"; }
fail() {
  printf '[e2e %3ss] FAILED: %s\n' "$((SECONDS - STARTED))" "$*" >&2
  for f in "$WORK"/*.log; do
    [ -f "$f" ] || continue
    printf -- '--- last lines of %s\n' "$(basename "$f")" >&2
    tail -n 15 "$f" >&2 || true
  done
  exit 1
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  [ -n "${SSE_PID:-}" ] && kill "$SSE_PID" 2>/dev/null || true
  # best effort: the topics, the keyspace and the Redis keys of this run
  E2E_TOPIC=$TOPIC E2E_KEYSPACE=$KEYSPACE E2E_PREFIX=$PREFIX timeout 30 "$BUN" -e '
    import { deleteTopics } from "./src/ingest/kafka-admin.ts";
    import cassandra from "cassandra-driver";
    import Redis from "ioredis";
    const env = process.env;
    await deleteTopics({ brokers: ["127.0.0.1:9092"], clientId: "rtae-e2e-cleanup", topics: [env.E2E_TOPIC, env.E2E_TOPIC + ".dlq"] }).catch(() => {});
    const c = new cassandra.Client({ contactPoints: ["127.0.0.1:9042"], localDataCenter: "datacenter1" });
    await c.execute(`DROP KEYSPACE IF EXISTS ${env.E2E_KEYSPACE}`).catch(() => {});
    await c.shutdown().catch(() => {});
    const r = new Redis("redis://127.0.0.1:6379", { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await r.connect();
      const keys = await r.keys(env.E2E_PREFIX + "*");
      if (keys.length > 0) await r.del(...keys);
    } catch {}
    r.disconnect();
  ' >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

# wait_for seconds description command... : polls every 0.2 s
wait_for() {
  local bound=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${bound}s waiting for $what${LAST:+ (last seen: $LAST)}"
    sleep 0.2
  done
}

step "rtae: ${RTAE[*]}; run $RUN"
step "services: Kafka, Cassandra, Redis (scripts/services.sh up)"
bash scripts/services.sh up kafka cassandra redis >"$WORK/services.log" 2>&1 || fail "scripts/services.sh up"

COMMON=(--kafka-brokers 127.0.0.1:9092 --kafka-topic "$TOPIC" --partitions "$PARTITIONS" --log-level warn)
DIST=("${COMMON[@]}" --consumer-group "$GROUP" --cassandra-contact-points 127.0.0.1:9042 --cassandra-keyspace "$KEYSPACE"
  --redis-url redis://127.0.0.1:6379 --redis-prefix "$PREFIX" --workers 2 --checkpoint-interval 250ms)

step "migrate: keyspace $KEYSPACE"
"${RTAE[@]}" migrate --cassandra-contact-points 127.0.0.1:9042 --cassandra-keyspace "$KEYSPACE" --log-level warn \
  >"$WORK/migrate.log" 2>&1 || fail "rtae migrate"

free_port() { "$BUN" -e 'const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") }); console.log(s.port); s.stop(true);'; }
PORT_A=$(free_port)
PORT_B=$(free_port)
while [ "$PORT_B" = "$PORT_A" ]; do PORT_B=$(free_port); done
A="http://127.0.0.1:$PORT_A"
B="http://127.0.0.1:$PORT_B"

step "serve: a on $PORT_A, b on $PORT_B (topic $TOPIC, group $GROUP)"
"${RTAE[@]}" serve "${DIST[@]}" --host 127.0.0.1 --port "$PORT_A" --data-dir "$WORK/a" >"$WORK/a.log" 2>&1 &
PID_A=$!
"${RTAE[@]}" serve "${DIST[@]}" --host 127.0.0.1 --port "$PORT_B" --data-dir "$WORK/b" >"$WORK/b.log" 2>&1 &
PID_B=$!
PIDS=("$PID_A" "$PID_B")
ready() { curl -sf -m 2 -o /dev/null "$1/ready"; }
alive() { kill -0 "$1" 2>/dev/null || fail "rtae (pid $1) exited during start"; }
wait_for 60 "instance a to be ready" eval 'alive $PID_A; ready $A'
wait_for 60 "instance b to be ready" eval 'alive $PID_B; ready $B'

step "produce: $COUNT events straight into Kafka"
"${RTAE[@]}" produce "${COMMON[@]}" --count "$COUNT" --rate 20000 --batch-size 500 --seed 7 \
  >"$WORK/produce.log" 2>&1 || fail "rtae produce --kafka-brokers"

FROM=$(( ($(date +%s) - 3600) * 1000 ))
TO=$(( ($(date +%s) + 3600) * 1000 ))
total_of() { curl -sf -m 5 "$1/api/metrics/summary?from=$FROM&to=$TO" | grep -o '"total":[0-9]*' | head -1 | cut -d: -f2; }
counts_all() { LAST="total $(total_of "$1" || true)"; [ "$LAST" = "total $COUNT" ]; }
wait_for 60 "instance a to count all $COUNT events" counts_all "$A"
wait_for 30 "instance b to count all $COUNT events" counts_all "$B"
LAST=
step "both instances count $COUNT events (a: $(total_of "$A"), b: $(total_of "$B"))"

step "stream: SSE on a, POST through b"
curl -sN -m 60 "$A/api/stream?topics=overview" >"$WORK/sse.txt" 2>/dev/null &
SSE_PID=$!
wait_for 10 "an SSE snapshot from a" grep -q '^event: snapshot' "$WORK/sse.txt"
NOW_MS=$(( $(date +%s) * 1000 ))
WANT=$((COUNT + 1))
RES=$(curl -s -m 10 -w ' %{http_code}' -H 'content-type: application/json' \
  --data "{\"eventId\":\"$RUN-probe\",\"type\":\"page_view\",\"timestamp\":$NOW_MS,\"userId\":\"e2e-u\",\"sessionId\":\"e2e-s\",\"page\":\"/e2e\"}" \
  "$B/api/events")
case "$RES" in *'"accepted":1'*' 202') ;; *) fail "POST /api/events through b answered: $RES" ;; esac
# a delta (not the snapshot) on a whose last-hour summary counts the event posted through b
delta_seen() { awk -v want="\"total\":$WANT" '/^event: /{ev=$2} /^data: /{ if (ev=="delta" && index($0, want)) found=1 } END{exit !found}' "$WORK/sse.txt"; }
wait_for 20 "an SSE delta on a with total $WANT" delta_seen
kill "$SSE_PID" 2>/dev/null || true
SSE_PID=
step "delta with total $WANT seen on a"

step "health-check.sh on both"
bash scripts/health-check.sh "$A" || fail "health check of a"
bash scripts/health-check.sh "$B" || fail "health check of b"

step "SIGTERM both"
kill -TERM "$PID_A" "$PID_B"
STATUS_A=0; wait "$PID_A" || STATUS_A=$?
STATUS_B=0; wait "$PID_B" || STATUS_B=$?
PIDS=()
LAST=
[ "$STATUS_A" -eq 0 ] || fail "instance a exited with $STATUS_A after SIGTERM"
[ "$STATUS_B" -eq 0 ] || fail "instance b exited with $STATUS_B after SIGTERM"

step "passed in $((SECONDS - STARTED)) s"
