#!/bin/sh
# Demo server: Apache httpd (foreground) + mod_fcgid + php-cgi on 127.0.0.1:PORT, php-cgi started
# through the OpenVZ `shmpages` beancounter double (tests/integration/ubc_double/ubc.py), so the
# field report's outage can be provoked by shrinking the budget.
#   usage: sh scripts/run-demo.sh [PORT]        (`make run` = `sh scripts/run-demo.sh 8080`)
# The server root (httpd.conf, logs/, ubc/) is written by tests/integration/harness.py, the same code
# that writes the integration tests' configs: build/demo, or /tmp/shmguard-demo-PORT when www-data
# cannot reach build/. Ctrl-C or SIGTERM stops Apache and every php-cgi; nothing is left running.
set -eu
PORT=${1:-8080}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
HARNESS=$HERE/tests/integration/harness.py
UBC=$HERE/tests/integration/ubc_double/ubc.py

for f in /usr/sbin/apache2 /usr/bin/php-cgi /usr/lib/apache2/modules/mod_fcgid.so $PY; do
  [ -e "$f" ] || { echo "run-demo: $f missing: run 'sh scripts/deps.sh test' (as root)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run-demo: run as root (Apache binds, then runs as www-data)" >&2; exit 1; }

# ---------------------------------------------------------------- mod_shmguard (switch)
# Loaded when it has been built (build/mod_shmguard.so, `make`) and its config exists
# (conf/shmguard.conf, Include-d after the LoadModule). SHMGUARD=0 runs the demo without it.
# The conf can use ${SHMGUARD_UBC_FILE} (the double's beancounter file) and ${SHMGUARD_ROOT}.
SHMGUARD_SO=${SHMGUARD_SO:-$HERE/build/mod_shmguard.so}
SHMGUARD_CONF=${SHMGUARD_CONF:-$HERE/conf/shmguard.conf}
if [ "${SHMGUARD:-1}" != 0 ] && [ -f "$SHMGUARD_SO" ] && [ -f "$SHMGUARD_CONF" ]; then
  set -- --shmguard-so "$SHMGUARD_SO" --shmguard-conf "$SHMGUARD_CONF"
  WITH="with mod_shmguard ($SHMGUARD_SO, $SHMGUARD_CONF)"
else
  set --
  WITH="WITHOUT mod_shmguard (needs $SHMGUARD_SO and $SHMGUARD_CONF)"
fi
# ----------------------------------------------------------------------------------------

OUT=$($PY "$HARNESS" demo --port "$PORT" ${SHMGUARD_DEMO_ROOT:+--root "$SHMGUARD_DEMO_ROOT"} "$@")
ROOT=$(echo "$OUT" | sed -n 's/^ROOT=//p')
CONF=$(echo "$OUT" | sed -n 's/^CONF=//p')
STATE=$(echo "$OUT" | sed -n 's/^UBC=//p')

/usr/sbin/apache2 -f "$CONF" -t >/dev/null 2>&1 || { /usr/sbin/apache2 -f "$CONF" -t; exit 1; }

APID=""
RPID=""
cleanup() {
  trap - INT TERM EXIT
  if [ -n "$APID" ] && kill -0 "$APID" 2>/dev/null; then
    kill -TERM "$APID" 2>/dev/null || true
    wait "$APID" 2>/dev/null || true
  fi
  if [ -n "$RPID" ]; then kill -TERM "$RPID" 2>/dev/null || true; wait "$RPID" 2>/dev/null || true; fi
  # anything of this root still alive (php-cgi, fcgid process manager) is stopped here
  $PY "$HARNESS" cleanup --root "$ROOT" || true
  $PY "$UBC" refresh "$STATE" || true
  echo "run-demo: stopped; logs in $ROOT/logs"
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C SHMGUARD_IT_ROOT="$ROOT" \
  /usr/sbin/apache2 -f "$CONF" -D FOREGROUND &
APID=$!
# keeps the beancounter file's `held` current as php-cgi workers exit
$PY "$UBC" refresh "$STATE" --loop 1 &
RPID=$!

cat <<EOF
mod_shmguard demo $WITH
  root        $ROOT   (httpd.conf, logs/error.log, ubc/)
  try         curl -i http://127.0.0.1:$PORT/index.php
              curl -i http://127.0.0.1:$PORT/sleep.php?ms=2000     (prints the php-cgi pid)
              curl -i http://127.0.0.1:$PORT/opcache.php
              curl -i http://127.0.0.1:$PORT/static.txt
              curl http://127.0.0.1:$PORT/server-status?auto
  status      http://127.0.0.1:$PORT/shmguard-status   (?auto ?json ?metrics; with mod_shmguard)
  probe       build/shmguard-probe --beancounters $STATE/user_beancounters
  budget      cat $STATE/user_beancounters      (OpenVZ format; 64 MiB = 16384 pages per php-cgi)
  outage      $PY $UBC set-barrier $STATE 8192
              without mod_shmguard: a request that needs a new php-cgi gets a bare 500 and
              logs/error.log shows "Unable to allocate shared memory segment of 67108864 bytes: ..."
              with mod_shmguard: 503 + Retry-After and a page that says why (SG0201 in the log);
              idle php-cgi workers keep serving
  restore     $PY $UBC set-barrier $STATE 262144
Ctrl-C stops it.
EOF

wait "$APID" || true
APID=""
