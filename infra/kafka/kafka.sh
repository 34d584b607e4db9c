#!/usr/bin/env bash
# Native Apache Kafka (KRaft, broker+controller in one JVM) from the official jars: one node on its
# own, or one node of a cluster on loopback (KAFKA_NODE_ID, KAFKA_CONTROLLER_VOTERS, KAFKA_CLUSTER_ID).
#
#   kafka.sh jars     resolve the broker jars into infra/kafka/lib/ with Maven (once; idempotent)
#   kafka.sh start    format the log dir if needed, start the broker, wait until it serves
#   kafka.sh stop     SIGTERM, wait, SIGKILL after KAFKA_STOP_TIMEOUT; leaves no process
#   kafka.sh kill     SIGKILL at once (a crashed node, for failure tests); data kept
#   kafka.sh status   exit 0 and print the bootstrap address if running, exit 3 if not
#   kafka.sh logs     last lines of the broker log (`logs -f` follows it)
#
# Environment (defaults in brackets):
#   KAFKA_PORT [9092]             PLAINTEXT listener on 127.0.0.1
#   KAFKA_CONTROLLER_PORT [9093]  CONTROLLER listener on 127.0.0.1
#   KAFKA_SASL_SSL_PORT []        if set, one more listener on 127.0.0.1: SASL_SSL (TLS, then
#                                 SCRAM-SHA-512); needs KAFKA_SSL_KEYSTORE_PEM. SCRAM users are
#                                 created through the admin API (inferwatch.infra.NativeKafka)
#   KAFKA_SSL_KEYSTORE_PEM []     PEM file: the broker's unencrypted PKCS#8 key + certificate chain
#   KAFKA_NODE_ID [1]             this node's id (broker and controller)
#   KAFKA_CONTROLLER_VOTERS []    a cluster's static controller quorum, the same on every node:
#                                 "1@127.0.0.1:<controller port>,2@127.0.0.1:<port>,..."; unset =
#                                 a one-node quorum (formatted with --standalone)
#   KAFKA_CLUSTER_ID []           cluster id used to format the log dir (every node of a cluster
#                                 needs the same); unset = a random one
#   KAFKA_REPLICATION [1]         replication factor of the broker's internal topics (offsets,
#                                 transactions) and default.replication.factor; min.insync.replicas
#                                 is one less (at least 1)
#   KAFKA_DATA_DIR [infra/kafka/run]  server.properties, data/, kafka.pid, server.log
#   KAFKA_HEAP [-Xmx512m]         JVM heap flags
#   KAFKA_START_TIMEOUT [60]      seconds `start` waits for the broker
#   KAFKA_STOP_TIMEOUT [30]       seconds `stop` waits after SIGTERM before SIGKILL
#   KAFKA_VERSION [pom default]   broker version to resolve (re-resolves lib/ when it changes)
#   KAFKA_LIB_DIR [infra/kafka/lib]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$HERE/run}"
KAFKA_HEAP="${KAFKA_HEAP:--Xmx512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_LIB_DIR="${KAFKA_LIB_DIR:-$HERE/lib}"
KAFKA_VERSION="${KAFKA_VERSION:-}"
KAFKA_SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-}"
KAFKA_SSL_KEYSTORE_PEM="${KAFKA_SSL_KEYSTORE_PEM:-}"
KAFKA_NODE_ID="${KAFKA_NODE_ID:-1}"
KAFKA_CONTROLLER_VOTERS="${KAFKA_CONTROLLER_VOTERS:-}"
KAFKA_CLUSTER_ID="${KAFKA_CLUSTER_ID:-}"
KAFKA_REPLICATION="${KAFKA_REPLICATION:-1}"
[[ "$KAFKA_NODE_ID" =~ ^[0-9]+$ ]] || { printf 'kafka: error: KAFKA_NODE_ID must be a number, got %s\n' "$KAFKA_NODE_ID" >&2; exit 1; }
[[ "$KAFKA_REPLICATION" =~ ^[1-9]$ ]] || { printf 'kafka: error: KAFKA_REPLICATION must be 1..9, got %s\n' "$KAFKA_REPLICATION" >&2; exit 1; }
KAFKA_MIN_ISR=$((KAFKA_REPLICATION > 1 ? KAFKA_REPLICATION - 1 : 1))
# Absolute paths: the pidfile check matches the broker's command line, whatever the caller's cwd.
KAFKA_DATA_DIR="$(realpath -m "$KAFKA_DATA_DIR")"
KAFKA_LIB_DIR="$(realpath -m "$KAFKA_LIB_DIR")"

PIDFILE="$KAFKA_DATA_DIR/kafka.pid"
PROPS="$KAFKA_DATA_DIR/server.properties"
LOG_DIR="$KAFKA_DATA_DIR/data"
SERVER_LOG="$KAFKA_DATA_DIR/server.log"
STDOUT_LOG="$KAFKA_DATA_DIR/kafka.out"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

say() { printf 'kafka: %s\n' "$*"; }
die() { printf 'kafka: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------- jars

# The stamp ties lib/ to the pom and the requested version, so editing either re-resolves.
jars_stamp() {
  { sha256sum "$HERE/pom.xml" | cut -d' ' -f1; echo "version=$KAFKA_VERSION"; } | sha256sum | cut -d' ' -f1
}

jars_ready() {
  [[ -f "$KAFKA_LIB_DIR/.stamp" && "$(cat "$KAFKA_LIB_DIR/.stamp")" == "$(jars_stamp)" ]]
}

cmd_jars() {
  if jars_ready; then
    say "jars ready in $KAFKA_LIB_DIR"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 \
    || die "Kafka jars missing in $KAFKA_LIB_DIR and mvn not found: install Maven 3.8+ (apt-get install maven)"
  command -v java >/dev/null 2>&1 \
    || die "java not found: install a JDK 17+ (apt-get install openjdk-17-jre-headless)"
  say "resolving Kafka jars with Maven into $KAFKA_LIB_DIR (first run downloads ~45 MB)..."
  local tmp="$KAFKA_LIB_DIR.tmp.$$"
  rm -rf "$tmp"
  local args=(-q -B -f "$HERE/pom.xml" package "-Dkafka.lib.dir=$tmp")
  [[ -n "$KAFKA_VERSION" ]] && args+=("-Dkafka.version=$KAFKA_VERSION")
  if ! mvn "${args[@]}" >"$HERE/.mvn-jars.log" 2>&1; then
    rm -rf "$tmp"
    tail -n 20 "$HERE/.mvn-jars.log" >&2 || true
    die "Maven could not resolve the Kafka jars (full output: $HERE/.mvn-jars.log)"
  fi
  rm -rf "$HERE/target"
  jars_stamp >"$tmp/.stamp"
  # Swap in one step, so a half-copied lib/ is never used.
  rm -rf "$KAFKA_LIB_DIR"
  mv "$tmp" "$KAFKA_LIB_DIR"
  say "jars ready in $KAFKA_LIB_DIR ($(ls "$KAFKA_LIB_DIR"/*.jar | wc -l) jars, $(ls "$KAFKA_LIB_DIR" | grep -o 'kafka_2.13-[^j]*' | sed 's/\.$//'))"
}

# ---------------------------------------------------------------------------------- helpers

find_java() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    JAVA="$(command -v java)"
  else
    die "java not found: install a JDK 17+ (apt-get install openjdk-17-jre-headless)"
  fi
  local major
  major="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
  [[ -n "$major" && "$major" -ge 17 ]] \
    || die "java $major at $JAVA is too old: Kafka 4 needs a JDK 17+ (apt-get install openjdk-17-jre-headless)"
}

# Alive = exists and is not a zombie (an orphaned broker may wait for a reaper that is slow).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [[ "$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)" != Z ]]
}

# PID from the pidfile if that process is alive and is our broker for this data dir.
running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  # Guard against a recycled PID: the command line must be our broker with our properties.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $PROPS" || return 1
  echo "$pid"
}

# The bootstrap address of the broker running from this data dir (its ports may differ from
# the caller's environment).
running_bootstrap() {
  local port
  port="$(sed -n 's|^advertised.listeners=PLAINTEXT://127.0.0.1:\([0-9]*\).*|\1|p' "$PROPS" 2>/dev/null)"
  echo "127.0.0.1:${port:-$KAFKA_PORT}"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port_owner() {
  local who=""
  if command -v ss >/dev/null 2>&1; then
    who="$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n1 \
      | sed 's/users:((\("[^"]*"\),pid=\([0-9]*\).*/\1 pid \2/')"
  fi
  echo "${who:-another process}"
}

check_port_free() {
  if port_open "$1" || { command -v ss >/dev/null 2>&1 && [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]; }; then
    die "port $1 is already in use by $(port_owner "$1") (set ${2} to a free port)"
  fi
}

# An explicit, sorted list of jars (not lib/*): the CDS archive is only valid for the exact
# class path it was dumped with.
classpath() {
  local jars=("$KAFKA_LIB_DIR"/*.jar)
  local IFS=:
  printf '%s' "${jars[*]}"
}

# Class-data sharing: the first broker run dumps the classes it loaded into an archive at exit;
# later JVMs map it and start about twice as fast (measured 3.5 s -> 1.8 s). The archive is
# tied to the JDK build and lives in lib/, so re-resolving the jars drops it.
cds_archive() {
  printf '%s/kafka-cds-%s.jsa' "$KAFKA_LIB_DIR" "$("$JAVA" -version 2>&1 | sha256sum | cut -c1-12)"
}

cds_opts() {
  CDS_OPTS=()
  [[ "${KAFKA_CDS:-1}" == 1 ]] || return 0
  local archive
  archive="$(cds_archive)"
  if [[ -s "$archive" ]]; then
    CDS_OPTS=(-XX:SharedArchiveFile="$archive" -Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off)
  elif [[ "${1:-}" == dump ]]; then
    # Dumped to a private name; `stop` renames it into place after a clean exit, so brokers
    # started in parallel never write the same file.
    local tmp="$archive.tmp.$$"
    echo "$tmp" >"$KAFKA_DATA_DIR/cds.pending"
    CDS_OPTS=(-XX:ArchiveClassesAtExit="$tmp" -Xlog:cds=off -Xlog:cds+dynamic=off)
  fi
}

# After the broker exited: keep the archive it dumped (clean exit) or drop it (killed).
cds_finish() {
  local pending="$KAFKA_DATA_DIR/cds.pending" tmp
  [[ -f "$pending" ]] || return 0
  tmp="$(cat "$pending")"
  rm -f "$pending"
  if [[ "$1" == clean && -s "$tmp" ]]; then
    mv -f "$tmp" "${tmp%.tmp.*}"
  else
    rm -f "$tmp"
  fi
}

write_properties() {
  mkdir -p "$LOG_DIR"
  local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT"
  local advertised="PLAINTEXT://127.0.0.1:$KAFKA_PORT"
  local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [[ -n "$KAFKA_SASL_SSL_PORT" ]]; then
    listeners+=",SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT"
    advertised+=",SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT"
    protocols+=",SASL_SSL:SASL_SSL"
  fi
  # A cluster's nodes share a static voter set (every node is a controller); one node alone
  # bootstraps a dynamic quorum of itself.
  local quorum="controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT"
  # Raft and broker-liveness timeouts: tight for one node (nothing to elect); Kafka's defaults for
  # a cluster, where a node stalled by a loaded machine must not set off elections or fencing.
  local election_ms=500 fetch_ms=1000 session_ms=6000
  if [[ -n "$KAFKA_CONTROLLER_VOTERS" ]]; then
    quorum="controller.quorum.voters=$KAFKA_CONTROLLER_VOTERS"
    election_ms=1000 fetch_ms=2000 session_ms=9000
  fi
  cat >"$PROPS" <<EOF
# Written by infra/kafka/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
$quorum
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$LOG_DIR

# Topics come from the registry (schemas/topics), never from a typo in a client.
auto.create.topics.enable=false
delete.topic.enable=true
num.partitions=1
default.replication.factor=$KAFKA_REPLICATION
min.insync.replicas=$KAFKA_MIN_ISR

# Internal topics: KAFKA_REPLICATION replicas (1 for one node), and few partitions (quick to create).
offsets.topic.replication.factor=$KAFKA_REPLICATION
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$KAFKA_REPLICATION
transaction.state.log.min.isr=$KAFKA_MIN_ISR
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=$KAFKA_REPLICATION
share.coordinator.state.topic.min.isr=$KAFKA_MIN_ISR

# Fast groups and fast start-up for tests and laptops.
group.initial.rebalance.delay.ms=0
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=$session_ms
controller.quorum.election.timeout.ms=$election_ms
controller.quorum.fetch.timeout.ms=$fetch_ms
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=2

# Storage: 64 MiB segments, 7 days of retention.
log.segment.bytes=67108864
log.retention.hours=168
log.retention.check.interval.ms=300000
EOF
  [[ -n "$KAFKA_SASL_SSL_PORT" ]] || return 0
  # The secured listener: TLS with the given PEM key store, then SCRAM-SHA-512 (credentials live
  # in the KRaft metadata log; the PLAINTEXT listener stays for the inter-broker link and admin).
  cat >>"$PROPS" <<EOF

# SASL_SSL listener (KAFKA_SASL_SSL_PORT): TLS, then SCRAM-SHA-512.
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$KAFKA_SSL_KEYSTORE_PEM
ssl.client.auth=none
EOF
}

java_opts() {
  # shellcheck disable=SC2206
  JAVA_OPTS=($KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent
    -Djava.awt.headless=true -Dkafka.logs.dir="$KAFKA_DATA_DIR"
    -Dlog4j2.configurationFile="$HERE/log4j2.properties")
}

format_if_needed() {
  [[ -f "$LOG_DIR/meta.properties" ]] && return 0
  say "formatting KRaft log dir $LOG_DIR"
  # A Kafka cluster id is 16 random bytes in URL-safe base64 without padding. Made here rather
  # than by `StorageTool random-uuid`, which would cost one more JVM start; like Kafka, refuse
  # ids starting with '-' (they read as CLI flags).
  local id="$KAFKA_CLUSTER_ID"
  while [[ -z "$id" || "$id" == -* ]]; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  # A static voter set is given by the properties; --standalone would make a second quorum.
  local quorum=(--standalone)
  [[ -n "$KAFKA_CONTROLLER_VOTERS" ]] && quorum=()
  # C1 only: the format tool is short-lived, so the JIT's second tier would only cost time.
  cds_opts
  if ! "$JAVA" -XX:TieredStopAtLevel=1 -XX:+UseSerialGC "${CDS_OPTS[@]}" \
      -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$KAFKA_DATA_DIR" \
      -cp "$(classpath)" kafka.tools.StorageTool format "${quorum[@]}" -t "$id" -c "$PROPS" \
      >"$KAFKA_DATA_DIR/format.log" 2>&1; then
    cat "$KAFKA_DATA_DIR/format.log" >&2
    die "formatting $LOG_DIR failed (see above)"
  fi
}

# ---------------------------------------------------------------------------------- commands

cmd_start() {
  local pid
  if pid="$(running_pid)"; then
    say "already running (pid $pid) from $KAFKA_DATA_DIR; bootstrap $(running_bootstrap)"
    running_bootstrap
    return 0
  fi
  find_java
  jars_ready || cmd_jars
  check_port_free "$KAFKA_PORT" KAFKA_PORT
  check_port_free "$KAFKA_CONTROLLER_PORT" KAFKA_CONTROLLER_PORT
  if [[ -n "$KAFKA_SASL_SSL_PORT" ]]; then
    check_port_free "$KAFKA_SASL_SSL_PORT" KAFKA_SASL_SSL_PORT
    [[ -n "$KAFKA_SSL_KEYSTORE_PEM" && -r "$KAFKA_SSL_KEYSTORE_PEM" ]] \
      || die "KAFKA_SASL_SSL_PORT needs KAFKA_SSL_KEYSTORE_PEM: a readable PEM file with the broker's key and certificate chain"
  fi
  mkdir -p "$KAFKA_DATA_DIR"
  rm -f "$PIDFILE"
  write_properties
  format_if_needed
  java_opts
  cds_opts dump
  local t0 log_offset=0
  t0="$(date +%s%N)"
  [[ -f "$SERVER_LOG" ]] && log_offset="$(stat -c %s "$SERVER_LOG")"
  # setsid: the broker outlives the shell (and a Ctrl-C in it) until `stop`.
  setsid "$JAVA" "${JAVA_OPTS[@]}" "${CDS_OPTS[@]}" -cp "$(classpath)" kafka.Kafka "$PROPS" \
    </dev/null >"$STDOUT_LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDFILE"
  say "starting broker (pid $pid) on $BOOTSTRAP, data in $KAFKA_DATA_DIR"
  local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  while :; do
    if ! alive "$pid"; then
      rm -f "$PIDFILE"
      cds_finish killed
      tail -n 30 "$STDOUT_LOG" >&2 2>/dev/null || true
      tail -n 30 "$SERVER_LOG" >&2 2>/dev/null || true
      die "broker exited during start-up (logs: $SERVER_LOG, $STDOUT_LOG)"
    fi
    # Ready = the server logged that it started (after the broker was unfenced) in this run,
    # and the listener accepts connections.
    if tail -c +"$((log_offset + 1))" "$SERVER_LOG" 2>/dev/null | grep -q 'Kafka Server started' \
        && port_open "$KAFKA_PORT"; then
      break
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$SERVER_LOG" >&2 2>/dev/null || true
      cmd_stop >/dev/null 2>&1 || true
      die "broker not ready after ${KAFKA_START_TIMEOUT}s (log: $SERVER_LOG)"
    fi
    sleep 0.1
  done
  local ms=$((($(date +%s%N) - t0) / 1000000))
  say "ready in ${ms} ms; bootstrap $BOOTSTRAP"
  echo "$BOOTSTRAP"
}

# No broker runs from this data dir: clear what a dead one may have left (its pid file, an
# unfinished CDS archive) and say so. Stop and kill then have nothing more to do.
clear_dead() {
  rm -f "$PIDFILE"
  cds_finish killed
  say "not running (data dir $KAFKA_DATA_DIR)"
}

cmd_stop() {
  local pid
  pid="$(running_pid)" || { clear_dead; return 0; }
  say "stopping broker (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT)) how=clean
  while alive "$pid"; do
    if ((SECONDS >= deadline)); then
      say "still alive after ${KAFKA_STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      how=killed
      for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
      break
    fi
    sleep 0.1
  done
  rm -f "$PIDFILE"
  cds_finish "$how"
  say "stopped"
}

cmd_kill() {
  local pid
  pid="$(running_pid)" || { clear_dead; return 0; }
  say "killing broker (pid $pid) with SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && die "broker pid $pid still alive 10 s after SIGKILL"
  rm -f "$PIDFILE"
  cds_finish killed
  say "killed"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    say "running (pid $pid), bootstrap $(running_bootstrap), data dir $KAFKA_DATA_DIR"
    return 0
  fi
  say "not running (data dir $KAFKA_DATA_DIR)"
  return 3
}

cmd_logs() {
  [[ -f "$SERVER_LOG" ]] || die "no broker log yet at $SERVER_LOG"
  if [[ "${1:-}" == "-f" ]]; then
    exec tail -n 100 -F "$SERVER_LOG"
  fi
  tail -n "${1:-100}" "$SERVER_LOG"
}

usage() {
  sed -n '2,/^[^#]/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

case "${1:-}" in
  jars) cmd_jars ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  kill) cmd_kill ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
