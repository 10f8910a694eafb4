#!/usr/bin/env bash
# Starts, stops and reports the distributed mode's servers (Kafka 4 KRaft, Cassandra 5.0, Redis) on loopback.
# Everything comes from Maven Central into .cache/services/ (jars, data, logs, pid files), so no Docker is needed.
#
# usage: scripts/services.sh up|down|status [kafka|cassandra|redis|all]...   (default: all)
#   up      fetch what is missing, start what is not running, wait until each answers; idempotent
#   down    stop what this script started (TERM, then KILL after a bound); a Redis it did not start is left alone
#   status  one line per service; exit 0 when all named services answer, 3 otherwise
# env: SERVICES_CACHE (default <repo>/.cache/services), KAFKA_WAIT_S (60), CASSANDRA_WAIT_S (180), MVN (mvn)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE="$REPO/scripts/services"
CACHE=${SERVICES_CACHE:-"$REPO/.cache/services"}
RUN="$CACHE/run"
LOGS="$CACHE/logs"
DATA="$CACHE/data"
MVN=${MVN:-mvn}

KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
KAFKA_WAIT_S=${KAFKA_WAIT_S:-60}
KAFKA_HOME="$CACHE/kafka"

# one place for the version: the fallback pom, which the tar.gz attempt follows too
CASSANDRA_VERSION=$(sed -n 's|.*<cassandra.version>\(.*\)</cassandra.version>.*|\1|p' "$HERE/cassandra-pom.xml")
CASSANDRA_PORT=9042
CASSANDRA_WAIT_S=${CASSANDRA_WAIT_S:-180}
CASSANDRA_HOME="$CACHE/cassandra"

REDIS_PORT=6379
REDIS_WAIT_S=${REDIS_WAIT_S:-20}

STOP_WAIT_S=${STOP_WAIT_S:-45}
PENDING=() # services launched by this run (or found starting) that `up` still has to wait for

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s; }

# ---------------------------------------------------------------- generic helpers

port_open() { # port -> 0 when something accepts a TCP connection on 127.0.0.1:port
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

pid_of() { # service -> pid of the live process this script started, or nothing
  local f="$RUN/$1.pid" pid marker
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  case $1 in
    kafka) marker=kafka.Kafka ;;
    cassandra) marker=CassandraDaemon ;;
    redis) marker=redis-server ;;
  esac
  # the marker guards against a recycled pid after a reboot or a crash
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$marker"; then
    echo "$pid"
  fi
}

show_log_tail() { # service
  local f="$LOGS/$1.log"
  if [ -f "$f" ]; then
    log "last 40 lines of $f:"
    tail -n 40 "$f" >&2 || true
  fi
}

# start_bg service command... : detached from this shell (own session, no inherited stdio, so a caller
# piping our output is not held open), output appended to the service log, pid written by the child itself.
start_bg() {
  local svc=$1; shift
  mkdir -p "$RUN" "$LOGS"
  printf '\n==== %s starting %s\n' "$(date -u +%FT%TZ)" "$svc" >>"$LOGS/$svc.log"
  # cwd is the cache, so nothing a JVM writes beside itself (hs_err files) lands in the work tree
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
  (cd "$CACHE" && exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$RUN/$svc.pid" "$@" </dev/null >>"$LOGS/$svc.log" 2>&1) &
  for _ in $(seq 1 50); do [ -s "$RUN/$svc.pid" ] && break; sleep 0.1; done
}

# wait_ready service seconds check_fn : polls check_fn until it succeeds, the process dies, or time runs out
wait_ready() {
  local svc=$1 limit=$2 check=$3 start pid
  start=$(now)
  while true; do
    if "$check"; then
      log "$svc ready after $(($(now) - start)) s"
      return 0
    fi
    pid=$(pid_of "$svc")
    if [ -z "$pid" ] && [ -s "$RUN/$svc.pid" ]; then
      show_log_tail "$svc"
      die "$svc exited while starting"
    fi
    if [ $(($(now) - start)) -ge "$limit" ]; then
      show_log_tail "$svc"
      die "$svc not ready after $limit s"
    fi
    sleep 1
  done
}

stop_service() { # service
  local svc=$1 pid
  pid=$(pid_of "$svc")
  if [ -z "$pid" ]; then
    rm -f "$RUN/$svc.pid"
    log "$svc: not running (from this script)"
    return 0
  fi
  log "$svc: stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((STOP_WAIT_S * 5))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$svc: still alive after $STOP_WAIT_S s, sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -f "$RUN/$svc.pid"
  log "$svc: stopped"
}

mvn_quiet() { # args... : Maven in batch mode, output to a log, shown only on failure
  local out="$LOGS/maven.log"
  mkdir -p "$LOGS"
  if ! "$MVN" -B -q "$@" >"$out" 2>&1; then
    tail -n 30 "$out" >&2
    return 1
  fi
}

# fetch_jars pom dest : copy a pom's runtime dependencies into dest, again only when the pom changed
fetch_jars() {
  local pom=$1 dest=$2 sum
  sum=$(sha256sum "$pom" | cut -d' ' -f1)
  if [ -f "$dest/.fetched" ] && [ "$(cat "$dest/.fetched")" = "$sum" ]; then
    return 0
  fi
  log "fetching $(basename "$pom") dependencies into $dest (Maven)"
  local t0; t0=$(now)
  rm -rf "$dest.tmp"
  mvn_quiet -f "$pom" dependency:copy-dependencies -DoutputDirectory="$dest.tmp" || die "Maven could not fetch $(basename "$pom")"
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
  echo "$sum" >"$dest/.fetched"
  log "fetched $(find "$dest" -name '*.jar' | wc -l) jars in $(($(now) - t0)) s"
}

render() { # template dest data_dir
  mkdir -p "$(dirname "$2")"
  sed -e "s|@DATA_DIR@|$3|g" "$1" >"$2"
}

# ---------------------------------------------------------------- Kafka

kafka_ready() {
  port_open "$KAFKA_PORT" || return 1
  # a metadata round trip, not just an open socket: the broker accepts connections before it has joined its quorum
  timeout 30 java -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$KAFKA_HOME/tools-log4j2.xml" -cp "$KAFKA_HOME/libs/*" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list >/dev/null 2>&1
}

kafka_up() {
  if [ -n "$(pid_of kafka)" ]; then
    if kafka_ready; then log "kafka: already up"; return 0; fi
    PENDING+=(kafka)
    return 0
  fi
  if port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; then
    [ -d "$KAFKA_HOME/libs" ] && kafka_ready && { log "kafka: a broker not started by this script answers on $KAFKA_PORT; using it"; return 0; }
    die "kafka: port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT is taken by another process"
  fi
  fetch_jars "$HERE/kafka-pom.xml" "$KAFKA_HOME/libs"
  local data="$DATA/kafka"
  mkdir -p "$data" "$LOGS"
  render "$HERE/kafka-server.properties" "$KAFKA_HOME/server.properties" "$data"
  cp "$HERE/kafka-log4j2.xml" "$KAFKA_HOME/log4j2.xml"
  cp "$HERE/kafka-tools-log4j2.xml" "$KAFKA_HOME/tools-log4j2.xml"
  local tool_log=(-Dlog4j2.configurationFile="$KAFKA_HOME/tools-log4j2.xml")
  if [ ! -f "$data/meta.properties" ]; then
    local id
    id=$(java -Xmx128m "${tool_log[@]}" -cp "$KAFKA_HOME/libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    [[ $id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "kafka: could not generate a cluster id (got '$id')"
    log "kafka: formatting $data (cluster id $id)"
    java -Xmx256m "${tool_log[@]}" -cp "$KAFKA_HOME/libs/*" kafka.tools.StorageTool format --ignore-formatted \
      -t "$id" -c "$KAFKA_HOME/server.properties" >>"$LOGS/kafka-format.log" 2>&1 ||
      { tail -n 20 "$LOGS/kafka-format.log" >&2; die "kafka: storage format failed"; }
  fi
  log "kafka: starting on 127.0.0.1:$KAFKA_PORT"
  start_bg kafka java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_HOME/log4j2.xml" -Dkafka.logs.dir="$LOGS" -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$KAFKA_HOME/server.properties"
  PENDING+=(kafka)
}

# ---------------------------------------------------------------- Cassandra

cassandra_ready() {
  port_open "$CASSANDRA_PORT" || return 1
  # CQL OPTIONS request (protocol v4, stream 0); a live node answers SUPPORTED (opcode 0x06).
  # The native port opens only once startup has finished, so this is the cqlsh-less readiness check.
  local reply
  reply=$(timeout 5 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/'"$CASSANDRA_PORT"'
    printf "\x04\x00\x00\x00\x05\x00\x00\x00\x00" >&3
    head -c 9 <&3 | od -An -tx1' 2>/dev/null | tr -d ' \n') || return 1
  [ "${reply:0:2}" = 84 ] && [ "${reply:8:2}" = 06 ]
}

# Cassandra's jars: the bin tar.gz when Maven Central serves it (its lib/), otherwise cassandra-all
# with its dependencies. Both run through the same CassandraDaemon command line below, so the path
# that is exercised here is the one that runs everywhere.
cassandra_fetch() {
  if [ -f "$CASSANDRA_HOME/libs/.fetched" ] && grep -qx "apache-cassandra-$CASSANDRA_VERSION-bin.tar.gz" "$CASSANDRA_HOME/source" 2>/dev/null; then
    return 0
  fi
  mkdir -p "$CASSANDRA_HOME"
  if [ ! -f "$CASSANDRA_HOME/tarball-unavailable-$CASSANDRA_VERSION" ]; then
    log "cassandra: trying org.apache.cassandra:apache-cassandra:$CASSANDRA_VERSION:tar.gz:bin"
    rm -rf "$CASSANDRA_HOME/dl"
    if mvn_quiet org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
      -Dartifact="org.apache.cassandra:apache-cassandra:$CASSANDRA_VERSION:tar.gz:bin" \
      -DoutputDirectory="$CASSANDRA_HOME/dl" 2>/dev/null; then
      rm -rf "$CASSANDRA_HOME/dist" "$CASSANDRA_HOME/libs"
      mkdir -p "$CASSANDRA_HOME/dist"
      tar -xzf "$CASSANDRA_HOME"/dl/*.tar.gz -C "$CASSANDRA_HOME/dist" --strip-components=1
      rm -rf "$CASSANDRA_HOME/dl"
      ln -s dist/lib "$CASSANDRA_HOME/libs"
      touch "$CASSANDRA_HOME/libs/.fetched"
      echo "apache-cassandra-$CASSANDRA_VERSION-bin.tar.gz" >"$CASSANDRA_HOME/source"
      return 0
    fi
    # remembered so later runs do not ask Maven again for a file it does not have
    touch "$CASSANDRA_HOME/tarball-unavailable-$CASSANDRA_VERSION"
    log "cassandra: bin tar.gz not served; falling back to cassandra-all $CASSANDRA_VERSION + dependencies"
  fi
  fetch_jars "$HERE/cassandra-pom.xml" "$CASSANDRA_HOME/libs"
  echo "cassandra-all-$CASSANDRA_VERSION (Maven dependencies)" >"$CASSANDRA_HOME/source"
}

cassandra_up() {
  if [ -n "$(pid_of cassandra)" ]; then
    if cassandra_ready; then log "cassandra: already up"; return 0; fi
    PENDING+=(cassandra)
    return 0
  fi
  if port_open "$CASSANDRA_PORT" || port_open 7000; then
    cassandra_ready && { log "cassandra: a node not started by this script answers on $CASSANDRA_PORT; using it"; return 0; }
    die "cassandra: port $CASSANDRA_PORT or 7000 is taken by another process"
  fi
  cassandra_fetch
  local data="$DATA/cassandra" conf="$CASSANDRA_HOME/conf" jamm opts=()
  mkdir -p "$data" "$conf"
  render "$HERE/cassandra.yaml" "$conf/cassandra.yaml" "$data"
  cp "$HERE/cassandra-logback.xml" "$conf/logback.xml"
  mapfile -t opts < <(grep -E '^-' "$HERE/cassandra-jvm.options")
  jamm=$(find -L "$CASSANDRA_HOME/libs/" -maxdepth 1 -name 'jamm-*.jar' | head -n 1)
  [ -n "$jamm" ] && opts+=("-javaagent:$jamm")
  log "cassandra: starting on 127.0.0.1:$CASSANDRA_PORT ($(cat "$CASSANDRA_HOME/source"))"
  # MAX_HEAP_SIZE=1G as the issue asks; no pre-touch, so an idle node stays well under it
  start_bg cassandra java -Xms256M -Xmx1G "${opts[@]}" \
    -Dcassandra.config="file://$conf/cassandra.yaml" \
    -Dlogback.configurationFile="file://$conf/logback.xml" \
    -Dcassandra.logdir="$LOGS" -Dcassandra.storagedir="$data" \
    -Dcassandra.jmx.local.port=7199 -Dcassandra-foreground=yes \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=1000 \
    -cp "$conf:$CASSANDRA_HOME/libs/*" org.apache.cassandra.service.CassandraDaemon
  PENDING+=(cassandra)
}

# ---------------------------------------------------------------- Redis

redis_ready() {
  local reply
  reply=$(timeout 2 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/'"$REDIS_PORT"'
    printf "PING\r\n" >&3
    head -c 5 <&3' 2>/dev/null) || return 1
  [ "$reply" = "+PONG" ]
}

redis_up() {
  if redis_ready; then log "redis: already answering on $REDIS_PORT"; return 0; fi
  if port_open "$REDIS_PORT"; then die "redis: port $REDIS_PORT is taken by something that does not answer PING"; fi
  if ! command -v redis-server >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "redis: redis-server is not installed (apt-get install redis-server needs root)"
    log "redis: installing Debian's redis-server"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  fi
  local data="$DATA/redis"
  mkdir -p "$data" "$RUN" "$LOGS"
  log "redis: starting on 127.0.0.1:$REDIS_PORT"
  # same flags as the machine's own Redis (nothing kept on disk), but dir, log and pid file in the cache
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$data" --logfile "$LOGS/redis.log" --pidfile "$RUN/redis.pid"
  wait_ready redis "$REDIS_WAIT_S" redis_ready
}

redis_down() {
  if [ -n "$(pid_of redis)" ]; then
    stop_service redis
  else
    rm -f "$RUN/redis.pid"
    if redis_ready; then log "redis: not started by this script; left running"; else log "redis: not running"; fi
  fi
}

# ---------------------------------------------------------------- status

status_line() { # service
  local svc=$1 pid ok port
  pid=$(pid_of "$svc")
  case $svc in
    kafka) port=$KAFKA_PORT; if [ -d "$KAFKA_HOME/libs" ]; then kafka_ready && ok=1 || ok=0; else port_open "$port" && ok=1 || ok=0; fi ;;
    cassandra) port=$CASSANDRA_PORT; cassandra_ready && ok=1 || ok=0 ;;
    redis) port=$REDIS_PORT; redis_ready && ok=1 || ok=0 ;;
  esac
  local rss=""
  [ -n "$pid" ] && rss=", rss $(($(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0) / 1024)) MiB"
  if [ "$ok" = 1 ] && [ -n "$pid" ]; then
    printf '%-9s up        127.0.0.1:%s  pid %s%s\n' "$svc" "$port" "$pid" "$rss"
  elif [ "$ok" = 1 ]; then
    printf '%-9s up        127.0.0.1:%s  (not started by this script)\n' "$svc" "$port"
  elif [ -n "$pid" ]; then
    printf '%-9s starting  127.0.0.1:%s  pid %s%s (not answering yet; log %s)\n' "$svc" "$port" "$pid" "$rss" "$LOGS/$svc.log"
  else
    printf '%-9s down      127.0.0.1:%s\n' "$svc" "$port"
  fi
  [ "$ok" = 1 ]
}

# ---------------------------------------------------------------- main

usage() { sed -n '5,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# fills LIST from the command line's service names, "all" (or nothing) meaning every service
parse_services() {
  local s
  LIST=()
  [ $# -eq 0 ] && set -- all
  for s in "$@"; do
    case $s in
      all | kafka | cassandra | redis) ;;
      *) log "unknown service: $s"; usage ;;
    esac
  done
  # fixed order, each once: up starts Kafka before Cassandra whatever order was typed
  for s in kafka cassandra redis; do
    case " $* " in *" $s "* | *" all "*) LIST+=("$s") ;; esac
  done
}

main() {
  [ $# -ge 1 ] || usage
  local cmd=$1; shift
  local list svc
  case $cmd in
    up | down | status) ;;
    -h | --help | help) usage ;;
    *) log "unknown command: $cmd"; usage ;;
  esac
  parse_services "$@"
  list=("${LIST[@]}")
  case $cmd in
    up)
      command -v java >/dev/null || die "java (17+) is needed"
      local jv
      jv=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
      [ "${jv%%.*}" -ge 17 ] 2>/dev/null || die "Kafka 4 needs Java 17 or newer (java here: ${jv:-unknown})"
      # launch everything first, then wait: Kafka and Cassandra boot side by side
      for svc in "${list[@]}"; do "${svc}_up"; done
      for svc in "${PENDING[@]}"; do
        case $svc in
          kafka) wait_ready kafka "$KAFKA_WAIT_S" kafka_ready ;;
          cassandra) wait_ready cassandra "$CASSANDRA_WAIT_S" cassandra_ready ;;
        esac
      done
      ;;
    down)
      # reverse order of up; Cassandra first because its shutdown is the slowest
      for svc in cassandra kafka redis; do
        printf '%s\n' "${list[@]}" | grep -qx "$svc" || continue
        if [ "$svc" = redis ]; then redis_down; else stop_service "$svc"; fi
      done
      ;;
    status)
      local rc=0
      for svc in "${list[@]}"; do status_line "$svc" || rc=3; done
      return $rc
      ;;
  esac
}

main "$@"
