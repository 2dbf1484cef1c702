# Shared by the CLI-level end-to-end scripts (cli_flash.sh, cli_catch.sh, cli_selftest.sh,
# cli_signed.sh): the skip when something is not built, a temporary directory, the twin on a flash
# file serving socketcand on loopback, and failure reports with the twin's console. The caller sets
# $twin and $cli, and lists the firmware files it needs in $needs, before sourcing this file.
# Without what it needs the script skips (77), or fails where RTCANBOOT_FIRMWARE_REQUIRED=1
# (script/test, after building everything): a missing build must not pass as a skip there.
not_built() {
  if [ "${RTCANBOOT_FIRMWARE_REQUIRED:-0}" != 0 ]; then
    echo "FAIL: $1 not built (RTCANBOOT_FIRMWARE_REQUIRED is set)"
    exit 1
  fi
  echo "SKIP: $1 not built"
  exit 77
}
for f in ${needs:-}; do
  [ -f "$f" ] || not_built "$f"
done
for f in "$twin" "$cli"; do
  [ -x "$f" ] || not_built "$f"
done
tmp=$(mktemp -d)
twin_pid=
stop_twin() {
  if [ -n "$twin_pid" ]; then
    kill "$twin_pid" 2>/dev/null
    wait "$twin_pid" 2>/dev/null
    twin_pid=
  fi
}
cleanup() {
  stop_twin
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
log=
fail() {
  echo "FAIL: $*"
  if [ -n "$log" ]; then
    echo "--- twin output (last 40 lines)"
    tail -n 40 "$log"
  fi
  exit 1
}
# start_twin LOG ARGS...: the twin on the board's flash file, serving socketcand; sets $bus.
start_twin() {
  log=$1
  shift
  "$twin" --flash "$tmp/flash.bin" --socketcand 127.0.0.1:0 --run-for 600000 "$@" >"$log" 2>&1 &
  twin_pid=$!
  local port=
  for _ in $(seq 100); do
    port=$(sed -n -E 's/.*socketcand on 127\.0\.0\.1:([0-9]+).*/\1/p' "$log" | head -n 1)
    [ -n "$port" ] && break
    kill -0 "$twin_pid" 2>/dev/null || fail "the twin exited early"
    sleep 0.1
  done
  [ -n "$port" ] || fail "the twin did not print its socketcand port"
  bus=socketcand://127.0.0.1:$port/can0
}
# wait_log LOG TEXT SECONDS
wait_log() {
  for _ in $(seq $(($3 * 10))); do
    grep -q "$2" "$1" && return 0
    sleep 0.1
  done
  return 1
}

