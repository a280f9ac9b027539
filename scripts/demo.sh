#!/usr/bin/env bash
# pgfm demonstration: a primary, two streaming standbys and a witness on
# loopback addresses, each with its own pgfm agent, using this machine's
# PostgreSQL. Prints cluster-status, kills the primary's postmaster, shows
# the failover step by step, the old primary rewound into a standby
# (auto.rewind), a switchover back and the status after it, then removes
# everything unless DEMO_KEEP=1. Run it with `make demo`.
set -euo pipefail

PGFM=${PGFM:-$(cd "$(dirname "$0")/.." && pwd)/bin/pgfm}
PGBIN=${PGFM_PG_BIN:-$(pg_config --bindir)}
CLUSTER=demo
HOSTS=(127.0.0.21 127.0.0.22 127.0.0.23 127.0.0.24)   # primary, 2 standbys, witness
NAMES=(primary standby1 standby2 witness)
DBNODES=(primary standby1 standby2)
DBPORT=${DEMO_DB_PORT:-15432}
BINDPORT=${DEMO_BIND_PORT:-17800}
ADMINPORT=${DEMO_ADMIN_PORT:-17809}

[ -x "$PGFM" ] || { echo "demo: $PGFM missing: run make build" >&2; exit 1; }
[ -x "$PGBIN/initdb" ] || { echo "demo: no PostgreSQL server binaries in $PGBIN: install postgresql or set PGFM_PG_BIN" >&2; exit 1; }

DIR=$(mktemp -d /tmp/pgfm-demo-XXXXXX)
chmod 755 "$DIR"
AGENT_PIDS=()

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
  if [ "${DEMO_KEEP:-0}" = 1 ]; then
    echo; echo "demo: left running in $DIR (agents: ${AGENT_PIDS[*]}); stop with:"
    echo "  kill ${AGENT_PIDS[*]}; for d in $DIR/{primary,standby1,standby2}/data; do $PGBIN/pg_ctl -D \$d stop -m fast; done"
    return
  fi
  for pid in "${AGENT_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${AGENT_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for n in "${DBNODES[@]}"; do
    [ -f "$DIR/$n/data/postmaster.pid" ] && as_postgres "$PGBIN/pg_ctl" -D "$DIR/$n/data" stop -m immediate -w >/dev/null 2>&1 || true
  done
  rm -rf "$DIR"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

for n in "${NAMES[@]}"; do
  mkdir -p "$DIR/$n"/{etc,state,log,lock,sock}
done
for n in "${DBNODES[@]}"; do chown -R postgres: "$DIR/$n" 2>/dev/null || true; done

step "PostgreSQL: primary on ${HOSTS[0]}:$DBPORT"
as_postgres "$PGBIN/initdb" -D "$DIR/primary/data" -U postgres --auth=trust >/dev/null
cat >>"$DIR/primary/data/postgresql.conf" <<CONF
listen_addresses = '${HOSTS[0]}'
port = $DBPORT
unix_socket_directories = '$DIR/primary/sock'
wal_level = replica
hot_standby = on
wal_log_hints = on
CONF
cat >"$DIR/primary/data/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.0/8 trust
host replication all 127.0.0.0/8 trust
HBA
as_postgres "$PGBIN/pg_ctl" -D "$DIR/primary/data" -l "$DIR/primary/postgres.log" -w start >/dev/null

for i in 1 2; do
  n=${NAMES[$i]}
  step "PostgreSQL: $n on ${HOSTS[$i]}:$DBPORT (pg_basebackup from the primary)"
  as_postgres "$PGBIN/pg_basebackup" -h "${HOSTS[0]}" -p "$DBPORT" -U postgres -D "$DIR/$n/data" -R -X stream \
    -d "application_name=$n"
  cat >>"$DIR/$n/data/postgresql.conf" <<CONF
listen_addresses = '${HOSTS[$i]}'
unix_socket_directories = '$DIR/$n/sock'
CONF
  as_postgres "$PGBIN/pg_ctl" -D "$DIR/$n/data" -l "$DIR/$n/postgres.log" -w start >/dev/null
done

for i in "${!NAMES[@]}"; do
  n=${NAMES[$i]}
  {
    echo "# $n: $CLUSTER.properties (see packaging/cluster.properties.sample)"
    echo "db.user=postgres"
    echo "db.port=$DBPORT"
    echo "db.database=postgres"
    echo "db.service.owner=postgres"
    echo "db.bin=$PGBIN"
    if [ "$n" = witness ]; then echo "is.witness=true"; else echo "db.data.dir=$DIR/$n/data"; echo "auto.rewind=true"; echo "auto.basebackup=true"; fi
    echo "bind.address=${HOSTS[$i]}:$BINDPORT"
    echo "admin.port=$ADMINPORT"
    echo "state.dir=$DIR/$n/state"
    echo "lock.dir=$DIR/$n/lock"
    echo "log.dir=$DIR/$n/log"
  } >"$DIR/$n/etc/$CLUSTER.properties"
  : >"$DIR/$n/etc/$CLUSTER.nodes"
done

pgfm() { local n=$1; shift; "$PGFM" --config-dir "$DIR/$n/etc" "$@"; }

start_agent() {
  local n=$1
  "$PGFM" --config-dir "$DIR/$n/etc" agent "$CLUSTER" >"$DIR/$n/agent.out" 2>&1 &
  AGENT_PIDS+=($!)
  for _ in $(seq 1 300); do
    pgfm "$n" node-status-json "$CLUSTER" >/dev/null 2>&1 && return 0
    kill -0 "${AGENT_PIDS[-1]}" 2>/dev/null || { echo "demo: agent $n exited:"; tail -20 "$DIR/$n/agent.out"; exit 1; }
    sleep 0.2
  done
  echo "demo: agent $n did not become ready"; tail -20 "$DIR/$n/agent.out"; exit 1
}

step "pgfm agent on the primary (its empty $CLUSTER.nodes makes it start the cluster)"
echo "\$ pgfm agent $CLUSTER"
start_agent primary

for i in 1 2 3; do
  n=${NAMES[$i]}
  step "pgfm agent on the $n: allowed first, then it joins through the primary"
  echo "\$ pgfm allow-node $CLUSTER ${HOSTS[$i]}    # on the primary"
  pgfm primary allow-node "$CLUSTER" "${HOSTS[$i]}"
  echo "\$ scp primary:/etc/pgfm/$CLUSTER.key /etc/pgfm/    # the cluster key, created by the primary's agent (mode 0600)"
  install -m 600 "$DIR/primary/etc/$CLUSTER.key" "$DIR/$n/etc/$CLUSTER.key"
  echo "${HOSTS[0]}:$BINDPORT" >"$DIR/$n/etc/$CLUSTER.nodes"
  start_agent "$n"
done

step "waiting for the cluster to report healthy"
for _ in $(seq 1 150); do
  pgfm witness cluster-status "$CLUSTER" >/dev/null 2>&1 && break
  sleep 0.2
done

step "pgfm cluster-status $CLUSTER"
rc=0
pgfm witness cluster-status "$CLUSTER" || rc=$?
echo "(exit code $rc)"

step "pgfm cluster-status-json $CLUSTER"
pgfm primary cluster-status-json "$CLUSTER"

step "the primary's $CLUSTER.nodes, kept current by its agent"
cat "$DIR/primary/etc/$CLUSTER.nodes"

step "failover: kill -9 the primary's postmaster"
# cluster-status-json exits 1 while the cluster is unhealthy: that is expected here.
status_json() { pgfm witness cluster-status-json "$CLUSTER" 2>/dev/null || true; }
primary_of() { status_json | sed -n 's/^  "primary": "\(.*\)",$/\1/p'; }
phase_of() { status_json | sed -n 's/^  "primaryPhase": "\([a-z-]*\)",*$/\1/p'; }
as_postgres psql -h "${HOSTS[0]}" -p "$DBPORT" -U postgres -qc "CREATE TABLE demo(t text); INSERT INTO demo VALUES ('written before the failover')"
t0=$(date +%s.%N)
kill -9 "$(head -1 "$DIR/primary/data/postmaster.pid")"
echo "killed at $(date -u +%H:%M:%S.%3N)"
new=""
for _ in $(seq 1 300); do
  p=$(primary_of); ph=$(phase_of)
  if [ -n "$p" ] && [ "$p" != "${HOSTS[0]}" ] && [ "$ph" = promoted ]; then new=$p; break; fi
  sleep 0.1
done
t1=$(date +%s.%N)
[ -n "$new" ] || { echo "demo: no failover within 30 s"; exit 1; }
printf 'new primary %s, promoted %.2f s after the kill\n' "$new" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"

step "what the agents did, in order (from their logs; 'failover committed' says why that standby won)"
for n in "${NAMES[@]}"; do
  grep -hE 'failover committed|Promotion has started|ran script|promoted: this node|following the new primary|fencing the local database|node type' "$DIR/$n/log/$CLUSTER.log" 2>/dev/null \
    | sed -n "s/^time=\([^ ]*\) level=[A-Z]* msg=/\1 [$n] /p"
done | sort | awk -v t="$(date -u -d @"${t0%.*}" +%Y-%m-%dT%H:%M:%S)" '$1 >= t' | cut -c12-

step "auto.rewind: the old primary's agent rewinds it into a standby of $new (auto.basebackup if pg_rewind cannot)"
rebuilt=""
for _ in $(seq 1 300); do
  if pgfm witness cluster-status "$CLUSTER" >/dev/null 2>&1; then rebuilt=yes; break; fi
  sleep 0.2
done
grep -hE 'rebuilding this old primary|throws away|pg_rewind cannot|copied the primary|rebuilt as a standby' "$DIR/primary/log/$CLUSTER.log" 2>/dev/null \
  | sed -n "s/^time=\([^ ]*\) level=[A-Z]* msg=/\1 [primary] /p" | cut -c12-
[ -n "$rebuilt" ] || { echo "demo: the old primary was not rebuilt within 60 s"; pgfm witness cluster-status "$CLUSTER" || true; exit 1; }

step "pgfm cluster-status $CLUSTER after the failover: the old primary streams again"
pgfm witness cluster-status "$CLUSTER" || true

step "switchover back, no write lost: pgfm promote $CLUSTER -switchover -candidate ${HOSTS[0]}"
pgfm witness promote "$CLUSTER" -switchover -candidate "${HOSTS[0]}" || rc=1

step "pgfm cluster-status $CLUSTER at the end"
for _ in $(seq 1 100); do pgfm witness cluster-status "$CLUSTER" >/dev/null 2>&1 && break; sleep 0.2; done
pgfm witness cluster-status "$CLUSTER" || rc=1
exit $rc
