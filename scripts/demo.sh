#!/usr/bin/env bash
# pgfm demonstration: a primary, a streaming standby and a witness on
# loopback addresses, each with its own pgfm agent, using this machine's
# PostgreSQL. Prints cluster-status, then removes everything unless
# DEMO_KEEP=1. Run it with `make demo`.
set -euo pipefail

PGFM=${PGFM:-$(cd "$(dirname "$0")/.." && pwd)/bin/pgfm}
PGBIN=${PGFM_PG_BIN:-$(pg_config --bindir)}
CLUSTER=demo
HOSTS=(127.0.0.21 127.0.0.22 127.0.0.23)   # primary, standby, witness
NAMES=(primary standby witness)
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
    echo "  kill ${AGENT_PIDS[*]}; for d in $DIR/{primary,standby}/data; do $PGBIN/pg_ctl -D \$d stop -m fast; done"
    return
  fi
  for pid in "${AGENT_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${AGENT_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for n in primary standby; do
    [ -f "$DIR/$n/data/postmaster.pid" ] && as_postgres "$PGBIN/pg_ctl" -D "$DIR/$n/data" stop -m immediate -w >/dev/null 2>&1 || true
  done
  rm -rf "$DIR"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

for i in 0 1 2; do
  mkdir -p "$DIR/${NAMES[$i]}"/{etc,state,log,lock,sock}
done
chown -R postgres: "$DIR/primary" "$DIR/standby" 2>/dev/null || true

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

step "PostgreSQL: standby on ${HOSTS[1]}:$DBPORT (pg_basebackup from the primary)"
as_postgres "$PGBIN/pg_basebackup" -h "${HOSTS[0]}" -p "$DBPORT" -U postgres -D "$DIR/standby/data" -R -X stream \
  -d "application_name=standby"
cat >>"$DIR/standby/data/postgresql.conf" <<CONF
listen_addresses = '${HOSTS[1]}'
unix_socket_directories = '$DIR/standby/sock'
CONF
as_postgres "$PGBIN/pg_ctl" -D "$DIR/standby/data" -l "$DIR/standby/postgres.log" -w start >/dev/null

for i in 0 1 2; do
  n=${NAMES[$i]}
  {
    echo "# $n: $CLUSTER.properties (see packaging/cluster.properties.sample)"
    echo "db.user=postgres"
    echo "db.port=$DBPORT"
    echo "db.database=postgres"
    echo "db.service.owner=postgres"
    echo "db.bin=$PGBIN"
    if [ "$n" = witness ]; then echo "is.witness=true"; else echo "db.data.dir=$DIR/$n/data"; fi
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

for i in 1 2; do
  n=${NAMES[$i]}
  step "pgfm agent on the $n: allowed first, then it joins through the primary"
  echo "\$ pgfm allow-node $CLUSTER ${HOSTS[$i]}    # on the primary"
  pgfm primary allow-node "$CLUSTER" "${HOSTS[$i]}"
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
exit $rc
