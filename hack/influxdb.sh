#!/usr/bin/env bash
# A private InfluxDB 1.8.10 for development and tests (cloud/telemetry).
#
#   hack/influxdb.sh install            build influxd with go install into the project cache (once, ≈ 2.5 min)
#   hack/influxdb.sh bin                print the influxd path; exit 1 if it is not installed
#   hack/influxdb.sh start DIR PORT [DB] start an instance with its config, data and log under DIR,
#                                       HTTP on 127.0.0.1:PORT, wait for /ping, create DB (default gridwatch)
#   hack/influxdb.sh stop DIR           stop the instance started in DIR
#
# 1.8.10 because it is the release that serves the v2 compatibility API (/api/v2/write, Flux /api/v2/query)
# that influxdb-client-go/v2 speaks; Debian's influxdb 1.6.7 answers 404 there.
# `start` with INFLUXD_WATCH_PID=<pid> also stops the server when that process exits, so a test binary
# that is killed does not leave an influxd behind; INFLUXD_START_TIMEOUT (seconds, default 180) bounds
# the wait for /ping. The binary lives in ${GRIDWATCH_CACHE:-~/.cache/gridwatch}/bin.
set -o errexit -o nounset -o pipefail

version=v1.8.10
module=github.com/influxdata/influxdb/cmd/influxd
cache=${GRIDWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gridwatch}
bindir=$cache/bin
influxd=$bindir/influxd

die() { echo "influxdb.sh: $*" >&2; exit 1; }

# installed: influxd is in the cache and (when go is at hand to tell) built from $version.
installed() {
  [ -x "$influxd" ] || return 1
  command -v go >/dev/null || return 0
  go version -m "$influxd" 2>/dev/null | grep -q "mod[[:space:]]*github.com/influxdata/influxdb[[:space:]]*$version"
}

# http METHOD PORT PATH: prints the status code of a request to 127.0.0.1:PORT (bash /dev/tcp, no curl needed).
http() {
  local method=$1 port=$2 path=$3 status
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf '%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n' "$method" "$path" >&3
  read -r _ status _ <&3 || status=""
  exec 3<&- 3>&-
  echo "$status"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: a port nobody listens on, for influxd's RPC (backup/restore) service.
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    port_busy "$p" || { echo "$p"; return 0; }
  done
  die "no free port found"
}

cmd_install() {
  if installed; then
    echo "influxdb.sh: influxd $version already installed at $influxd"
    return 0
  fi
  command -v go >/dev/null || die "go is not on PATH"
  mkdir -p "$bindir"
  echo "influxdb.sh: building influxd $version with go install into $bindir (≈ 2.5 min, once)"
  GOBIN=$bindir CGO_ENABLED=0 go install "$module@$version"
  installed || die "go install finished but $influxd is not influxd $version"
  echo "influxdb.sh: installed $influxd"
}

cmd_bin() {
  installed || die "influxd $version is not installed: run hack/influxdb.sh install"
  echo "$influxd"
}

cmd_start() {
  [ $# -ge 2 ] || die "usage: hack/influxdb.sh start DIR PORT [DB]"
  local dir=$1 port=$2 db=${3:-gridwatch}
  installed || die "influxd $version is not installed: run hack/influxdb.sh install"
  [[ $port =~ ^[0-9]+$ ]] || die "PORT: $port is not a number"
  [[ $db =~ ^[A-Za-z0-9_-]+$ ]] || die "DB: $db must be letters, digits, _ or -"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/influxd.pid" ] && kill -0 "$(cat "$dir/influxd.pid")" 2>/dev/null; then
    die "an influxd is already running from $dir (pid $(cat "$dir/influxd.pid")): hack/influxdb.sh stop $dir"
  fi
  port_busy "$port" && die "port $port is already in use"
  local rpc
  rpc=$(free_port)
  cat >"$dir/influxdb.conf" <<EOF
# Written by hack/influxdb.sh: a private instance, everything under $dir.
reporting-disabled = true
bind-address = "127.0.0.1:$rpc"

[meta]
  dir = "$dir/meta"

[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:$port"
  flux-enabled = true
  log-enabled = false
  auth-enabled = false

[logging]
  level = "warn"
EOF
  nohup "$influxd" run -config "$dir/influxdb.conf" >>"$dir/influxd.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/influxd.pid"
  if [ -n "${INFLUXD_WATCH_PID:-}" ]; then
    local watch=$INFLUXD_WATCH_PID
    nohup bash -c "while kill -0 $watch 2>/dev/null && kill -0 $pid 2>/dev/null; do sleep 1; done; kill $pid 2>/dev/null || true" \
      >/dev/null 2>&1 </dev/null &
  fi
  # influxd compiles Flux's standard library before it listens: a few seconds on an idle machine,
  # much longer on a loaded CI runner.
  local status="" timeout=${INFLUXD_START_TIMEOUT:-180}
  local deadline=$((SECONDS + timeout))
  while [ $SECONDS -lt $deadline ]; do
    kill -0 "$pid" 2>/dev/null || { tail -20 "$dir/influxd.log" >&2; die "influxd exited during start-up (log: $dir/influxd.log)"; }
    status=$(http GET "$port" /ping 2>/dev/null || true)
    [ "$status" = 204 ] && break
    sleep 0.2
  done
  [ "$status" = 204 ] || { kill "$pid" 2>/dev/null || true; die "influxd did not answer /ping on 127.0.0.1:$port within $timeout s (log: $dir/influxd.log)"; }
  status=$(http POST "$port" "/query?q=CREATE%20DATABASE%20%22$db%22")
  [ "$status" = 200 ] || die "CREATE DATABASE $db answered HTTP $status"
  echo "influxdb.sh: influxd pid $pid on http://127.0.0.1:$port (rpc 127.0.0.1:$rpc), database $db, dir $dir"
}

cmd_stop() {
  [ $# -ge 1 ] || die "usage: hack/influxdb.sh stop DIR"
  local pidfile=$1/influxd.pid pid
  [ -f "$pidfile" ] || { echo "influxdb.sh: nothing to stop in $1"; return 0; }
  pid=$(cat "$pidfile")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  echo "influxdb.sh: stopped influxd pid $pid"
}

[ $# -ge 1 ] || die "usage: hack/influxdb.sh install | bin | start DIR PORT [DB] | stop DIR"
sub=$1
shift
case $sub in
  install) cmd_install "$@" ;;
  bin) cmd_bin "$@" ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  *) die "unknown command $sub: use install, bin, start or stop" ;;
esac
