#!/usr/bin/env bash
# Runs the whole system on one machine with embedded defaults: a simulated
# street camera served over RTSP, the edge agent, and the cloud (embedded MQTT
# broker + SQLite). Prints where to look; Ctrl-C stops everything it started.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

HTTP=127.0.0.1:8080
MQTT_PORT=1884
RTSP_PORT=8554
SEED=${SEED:-1}
RTSP_SERVER=../shared/tools/rtsp-server.py
D=_demo

say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }
die() { printf '\033[31mdemo: %s\033[0m\n' "$*" >&2; exit 1; }

[ -x bin/gridwatch-edge ] && [ -x bin/gridwatch-cloud ] || die "binaries missing: run 'make demo' (it builds first)"
[ -f "$RTSP_SERVER" ] || die "the RTSP test server $RTSP_SERVER is missing: check out ../shared beside this repository"
for port in ${HTTP##*:} $MQTT_PORT $RTSP_PORT; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    die "port $port is already in use (another demo still running?); stop it and try again"
  fi
done

pids=()
cleanup() {
  trap - INT TERM EXIT
  [ ${#pids[@]} -gt 0 ] && { say "stopping ${#pids[@]} processes"; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
}
trap cleanup EXIT
trap 'exit 0' INT TERM

rm -rf "$D/cloud" "$D/edge"
mkdir -p "$D/scene"
if [ ! -s "$D/scene/scene.ts" ] || [ "$(cat "$D/scene/seed" 2>/dev/null)" != "$SEED" ]; then
  say "[1/4] rendering the simulated street scene (seed $SEED): one cover goes missing at ~12 s and is replaced at ~40 s"
  bin/gridwatch-edge simulate --seed "$SEED" --out "$D/scene"
  echo "$SEED" > "$D/scene/seed"
else
  say "[1/4] reusing the rendered scene in $D/scene (seed $SEED)"
fi

say "[2/4] starting the cloud: web $HTTP, embedded MQTT broker 127.0.0.1:$MQTT_PORT (not 1883: a system Mosquitto may own it), SQLite in $D/cloud"
# The box's broker credentials: the embedded broker lets in only the boxes in
# devices.passwd, each publishing only as itself (firmware-config/demo-box.yaml
# reads its password from $D/broker/box-chaoyang-0001.password).
mkdir -p "$D/broker"
bin/gridwatch-cloud devices add --credentials "$D/broker/devices.passwd" --secrets "$D/broker" box-chaoyang-0001 >/dev/null
bin/gridwatch-cloud serve --http "$HTTP" --mqtt-listen "127.0.0.1:$MQTT_PORT" --devices "$D/broker/devices.passwd" \
  --data "$D/cloud" --fleet firmware-config >"$D/cloud.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://$HTTP/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://$HTTP/healthz" >/dev/null || { tail -20 "$D/cloud.log"; die "the cloud did not start; log above ($D/cloud.log)"; }

say "[3/4] serving the camera: rtsp://127.0.0.1:$RTSP_PORT/cam1"
/usr/bin/python3 "$RTSP_SERVER" "$RTSP_PORT" "cam1=$PWD/$D/scene/scene.ts" >"$D/rtsp.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -qs ready "$D/rtsp.log" && break; sleep 0.1; done
grep -q ready "$D/rtsp.log" || { cat "$D/rtsp.log"; die "the RTSP server did not start"; }

say "[4/4] starting the edge agent (firmware-config/demo-box.yaml)"
bin/gridwatch-edge run --config firmware-config/demo-box.yaml >"$D/edge.log" 2>&1 &
pids+=($!)

say "open http://$HTTP (map) — verifier queue: http://$HTTP/ui/queue, sign in with token demo-verifier (A accepts)"
say "big screen http://$HTTP/ui/screen · fleet http://$HTTP/ui/fleet · cases as JSON: curl -s http://$HTTP/api/v1/cases"
say "or accept from the shell: curl -s -XPOST -H 'Authorization: Bearer demo-verifier' -d '{\"accept\":true}' http://$HTTP/api/v1/cases/1/verify"
say "logs: $D/cloud.log $D/edge.log $D/rtsp.log"
start=$SECONDS
shown=0
while true; do
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || die "a process exited; see the logs in $D/"; done
  n=$(curl -s "http://$HTTP/api/v1/cases" | grep -o '"id":' | wc -l || true)
  if [ "$n" -gt "$shown" ]; then
    shown=$n
    say "$(( SECONDS - start ))s: $n case(s) — newest:"
    curl -s "http://$HTTP/api/v1/cases?limit=1" | python3 -c 'import json,sys; c=json.load(sys.stdin)[0]; print("  #%(id)s %(status)s · category %(category)s %(category_name)s · facility %(facility_id)s · owner %(owner_name)s · grid %(grid_cell)s %(street_name)s · evidence http://'"$HTTP"'%(evidence_url)s" % c)'
  elif [ $(( (SECONDS - start) % 10 )) -eq 0 ] && [ "$shown" -eq 0 ]; then
    say "$(( SECONDS - start ))s: watching the camera; no case yet ($(grep -c 'cover report queued' "$D/edge.log" || true) reports queued)"
  fi
  sleep 1
done
