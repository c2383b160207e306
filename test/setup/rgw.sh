#!/bin/bash
# A throw-away single-node Ceph with a radosgw on loopback, for the remote (S3) tests.
#
#   test/setup/rgw.sh start    start it, or find it already running; prints the env to use
#   test/setup/rgw.sh env      print the env of the running one (exit 1 if none)
#   test/setup/rgw.sh stop     stop every daemon it started and remove its directory
#   test/setup/rgw.sh status   exit 0 if it answers S3 requests
#   test/setup/rgw.sh gw-stop [a|b]   stop only that radosgw (an S3 outage; the cluster and its data stay)
#   test/setup/rgw.sh gw-start [a|b]  start it (again) and wait until it answers
#
# Two gateways can serve the one cluster: a (started by start, on PORT: every test uses it) and b
# (on PORT2, started only by gw-start b). An outage test talks to b and stops b, so the test files
# running beside it, all on a, never see the outage.
# `stop` removes everything (the OSD is a memstore: the data lives in RAM), so an outage test that
# needs the bucket's objects after the outage uses gw-stop / gw-start.
#
# One mon, one mgr, one memstore OSD (data in RAM: about 500 MiB once written to, gone at stop),
# and radosgw's beast frontend on 127.0.0.1 only. Auth is off inside the cluster; S3 requests are
# signed with a test user's keys as on any S3 endpoint. Starts in about 12 s.
#
# The env it prints (also written to $DIR/env as KEY=VALUE lines, read by test/setup/rgw.ts):
#   STRATA_TEST_S3_ENDPOINT  http://127.0.0.1:PORT
#   STRATA_TEST_S3_ENDPOINT2 http://127.0.0.1:PORT2 (gateway b, answering once gw-start b ran)
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION
# so `eval "$(test/setup/rgw.sh start)"` sets up a shell, and the SDK's standard credential chain
# finds the keys.
#
# Settings (env): STRATA_RGW_DIR (default /tmp/strata-rgw), STRATA_RGW_PORT (7480),
# STRATA_RGW_PORT2 (PORT + 1), STRATA_RGW_MON_PORT (6789). Two instances need different values of all.
#
# Needs (Debian 12, ceph 16.2): apt-get install -y --no-install-recommends ceph-mon ceph-osd ceph-mgr radosgw ceph-common
# Learned from ../shared/ceph/rgw-up.sh.
set -euo pipefail

D=${STRATA_RGW_DIR:-/tmp/strata-rgw}
PORT=${STRATA_RGW_PORT:-7480}
PORT2=${STRATA_RGW_PORT2:-$((PORT + 1))}
MON_PORT=${STRATA_RGW_MON_PORT:-6789}
KEY=STRATATESTKEY
SECRET=strata-test-secret-not-for-production
export PATH="$PATH:/usr/sbin:/sbin"
export CEPH_CONF=$D/ceph.conf

say() { echo "rgw.sh: $*" >&2; }

print_env() {
  cat "$D/env" | sed 's/^/export /'
}

# answers [PORT]: the gateway on that port (default: a's) answers HTTP.
answers() {
  curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:${1:-$PORT}/"
}

# The cluster and gateway a are up (gateway b comes and goes with the outage tests).
all_alive() {
  local f
  for f in mon.a mgr.x osd.0 client.rgw.a; do
    [ -f "$D/run/$f.pid" ] && kill -0 "$(cat "$D/run/$f.pid")" 2>/dev/null || return 1
  done
}

stop() {
  local f pid pids=""
  if [ -d "$D/run" ]; then
    for f in "$D"/run/*.pid; do
      [ -f "$f" ] || continue
      pid=$(cat "$f")
      # Only a process that is one of ours: a stale pid file must not kill whatever took the number.
      if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "CEPH_CONF=$D/ceph.conf"; then
        kill "$pid" 2>/dev/null || true
        pids="$pids $pid"
      fi
    done
  fi
  for _ in $(seq 50); do
    local left=""
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && left="$left $pid"; done
    pids=$left
    [ -z "$pids" ] && break
    sleep 0.2
  done
  for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$D"
}

start() {
  if [ -f "$D/env" ] && all_alive && answers; then
    say "already running at http://127.0.0.1:$PORT ($D)"
    print_env
    return 0
  fi
  # A cluster that came up half way on a loaded machine (a daemon lost a race with the mon, the gateway's
  # first pool creation stalled) is cleared and started again: up to three attempts, each failure shown.
  local attempt
  for attempt in 1 2 3; do
    if start_once; then return 0; fi
    say "attempt $attempt of 3 failed"
  done
  exit 1
}

# show_logs: the last lines of every log of the attempt that failed, so CI output says why.
show_logs() {
  local f
  for f in "$D"/log/*.log; do
    [ -f "$f" ] || continue
    echo "--- $f (last 15 lines)" >&2
    tail -15 "$f" >&2
  done
}

# start_once: one attempt from nothing; returns 1 (after clearing what it started) if the cluster did not come up.
start_once() {
  # Remains of an earlier run (killed, or half started): clear them first.
  stop
  for tool in ceph-mon ceph-mgr ceph-osd radosgw radosgw-admin ceph curl; do
    command -v "$tool" >/dev/null || {
      say "$tool is missing: apt-get install -y --no-install-recommends ceph-mon ceph-osd ceph-mgr radosgw ceph-common curl"
      exit 2
    }
  done
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; then
    say "port $PORT already answers, and not for $D: set STRATA_RGW_PORT (and STRATA_RGW_MON_PORT, STRATA_RGW_DIR)"
    exit 2
  fi
  mkdir -p "$D"/{mon,osd,mgr,log,run}
  cat >"$D/ceph.conf" <<EOF
[global]
fsid = $(cat /proc/sys/kernel/random/uuid)
mon host = v1:127.0.0.1:$MON_PORT
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
osd objectstore = memstore
osd class update on start = false
osd crush update on start = false
memstore device bytes = 2147483648
public addr = 127.0.0.1
run dir = $D/run
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
admin socket = $D/run/\$name.asok
keyring = /dev/null
[mon.a]
mon data = $D/mon
public addr = v1:127.0.0.1:$MON_PORT
[mgr.x]
mgr data = $D/mgr
[osd.0]
osd data = $D/osd
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw dns name = 127.0.0.1
[client.rgw.b]
rgw frontends = beast endpoint=127.0.0.1:$PORT2
rgw dns name = 127.0.0.1
EOF
  local t0=$SECONDS
  {
    ceph-mon --mkfs -i a --keyring /dev/null
    ceph-mon -i a
    ceph-mgr -i x
    local uuid
    uuid=$(cat /proc/sys/kernel/random/uuid)
    ceph --connect-timeout 60 osd create "$uuid" >/dev/null
    ceph osd crush add osd.0 1 root=default host=localhost 2>/dev/null
    ceph-osd -i 0 --mkfs --osd-uuid "$uuid"
    ceph-osd -i 0
    radosgw -n client.rgw.a
  } >>"$D/log/start.log" 2>&1 9>&- || { # 9>&-: the daemons must not hold the start lock
    say "a daemon did not start; the logs:"
    show_logs
    stop
    return 1
  }
  local up=""
  # Its first start creates the gateway's pools: seconds on an idle machine, minutes under a loaded 2-core CI run.
  for _ in $(seq 360); do
    if answers; then up=1; break; fi
    sleep 0.5
  done
  if [ -z "$up" ]; then
    say "radosgw did not answer on 127.0.0.1:$PORT within 180 s; the logs:"
    show_logs
    stop
    return 1
  fi
  if ! radosgw-admin user create --uid=strata-test --display-name=strata-test --access-key="$KEY" --secret="$SECRET" >>"$D/log/start.log" 2>&1; then
    say "radosgw-admin user create failed; the logs:"
    show_logs
    stop
    return 1
  fi
  cat >"$D/env" <<EOF
STRATA_TEST_S3_ENDPOINT=http://127.0.0.1:$PORT
STRATA_TEST_S3_ENDPOINT2=http://127.0.0.1:$PORT2
AWS_ACCESS_KEY_ID=$KEY
AWS_SECRET_ACCESS_KEY=$SECRET
AWS_REGION=us-east-1
EOF
  say "up in $((SECONDS - t0)) s at http://127.0.0.1:$PORT ($D); stop with: $0 stop"
  print_env
}

# gw_stop NAME: stops that gateway only.
gw_stop() {
  local f=$D/run/client.rgw.$1.pid pid port
  port=$([ "$1" = b ] && echo "$PORT2" || echo "$PORT")
  [ -f "$f" ] || { say "no radosgw $1 pid file in $D/run"; exit 1; }
  pid=$(cat "$f")
  if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "CEPH_CONF=$D/ceph.conf"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
  for _ in $(seq 50); do answers "$port" || return 0; sleep 0.1; done
  say "radosgw $1 still answers on $port"
  exit 1
}

# gw_start NAME: starts that gateway (unless it answers) and waits until it does.
gw_start() {
  local port
  port=$([ "$1" = b ] && echo "$PORT2" || echo "$PORT")
  answers "$port" && return 0
  radosgw -n "client.rgw.$1" >>"$D/log/start.log" 2>&1 9>&-
  for _ in $(seq 120); do
    answers "$port" && return 0
    sleep 0.5
  done
  say "radosgw $1 did not answer on 127.0.0.1:$port within 60 s after gw-start"
  exit 1
}

# One start or stop at a time: test files running in parallel all call start.
exec 9>"$D.lock"
flock 9

case "${1:-start}" in
start) start ;;
stop) stop ;;
env) [ -f "$D/env" ] && all_alive && print_env || { say "not running ($D)"; exit 1; } ;;
status) [ -f "$D/env" ] && all_alive && answers ;;
gw-stop | gw-start)
  gw=${2:-a}
  [ "$gw" = a ] || [ "$gw" = b ] || { say "gateway $gw: a or b"; exit 2; }
  if [ "$1" = gw-stop ]; then gw_stop "$gw"; else gw_start "$gw"; fi
  ;;
*)
  say "usage: $0 start|env|status|stop|gw-stop [a|b]|gw-start [a|b]"
  exit 2
  ;;
esac
