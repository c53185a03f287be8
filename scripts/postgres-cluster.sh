# shellcheck shell=bash
# A throw-away PostgreSQL cluster for the tests and the store benchmark: sourced, then
# `postgres_cluster_start [postgres -c options…]` initialises one in a fresh temp dir, starts
# it listening on a unix socket in that dir only (no TCP), exports HALLMARK_TEST_POSTGRES
# (its URL) and stops and removes it when the shell exits. initdb and postgres refuse to run
# as root: as root, they run as `nobody`.

postgres_bin_dir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
    echo "postgres-cluster: PostgreSQL's server binaries are not installed (Debian: apt-get install postgresql; scripts/setup does)" >&2
    return 1
  fi
  echo "$dir"
}

postgres_cluster_stop() {
  if [ -n "${POSTGRES_CLUSTER_DIR:-}" ] && [ -d "$POSTGRES_CLUSTER_DIR/data" ]; then
    $POSTGRES_AS "$POSTGRES_BIN/pg_ctl" -D "$POSTGRES_CLUSTER_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "${POSTGRES_CLUSTER_DIR:-}" ]; then
    rm -rf "$POSTGRES_CLUSTER_DIR"
  fi
  POSTGRES_CLUSTER_DIR=
}

postgres_cluster_start() {
  POSTGRES_BIN=$(postgres_bin_dir) || return 1
  POSTGRES_AS=
  POSTGRES_CLUSTER_DIR=$(mktemp -d /tmp/hallmark-pg.XXXXXX)
  # The socket has a directory of its own (traversable by all: sandboxed `serve` workers run
  # as another user), apart from the data directory.
  chmod 755 "$POSTGRES_CLUSTER_DIR"
  mkdir -m 755 "$POSTGRES_CLUSTER_DIR/socket"
  if [ "$(id -u)" = 0 ]; then
    chown nobody "$POSTGRES_CLUSTER_DIR" "$POSTGRES_CLUSTER_DIR/socket"
    POSTGRES_AS="setpriv --reuid=nobody --regid=nogroup --clear-groups --"
  fi
  trap postgres_cluster_stop EXIT
  $POSTGRES_AS "$POSTGRES_BIN/initdb" -D "$POSTGRES_CLUSTER_DIR/data" -U hallmark --auth=trust \
    -E UTF8 --no-sync >"$POSTGRES_CLUSTER_DIR/initdb.log" 2>&1 \
    || { cat "$POSTGRES_CLUSTER_DIR/initdb.log" >&2; return 1; }
  local options="-c listen_addresses='' -k $POSTGRES_CLUSTER_DIR/socket -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  local extra
  for extra in "$@"; do options="$options -c $extra"; done
  $POSTGRES_AS "$POSTGRES_BIN/pg_ctl" -D "$POSTGRES_CLUSTER_DIR/data" -o "$options" \
    -l "$POSTGRES_CLUSTER_DIR/server.log" -w -t 60 start >/dev/null \
    || { cat "$POSTGRES_CLUSTER_DIR/server.log" >&2; return 1; }
  "$POSTGRES_BIN/createdb" -h "$POSTGRES_CLUSTER_DIR/socket" -U hallmark hallmark
  local host
  host=$(printf '%s' "$POSTGRES_CLUSTER_DIR/socket" | sed 's|/|%2F|g')
  export HALLMARK_TEST_POSTGRES="postgresql://hallmark@$host/hallmark"
  echo "postgres-cluster: PostgreSQL running for this run at $HALLMARK_TEST_POSTGRES" >&2
}
