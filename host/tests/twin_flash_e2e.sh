#!/usr/bin/env bash
# End to end with the twin: the real bootloader firmware on an emulated RT1064, reached over the
# twin's socketcand endpoint; `rtcanboot flash` installs the example application, whose heartbeat
# follows, and `rtcanboot info` shows it running.
#   twin_flash_e2e.sh RTCANBOOT_CLI RTCANBOOT_TWIN FIRMWARE_BUILD_DIR
# Exits 77 (skipped) when the firmware has not been built.
set -u
cli=$1
twin=$2
fw=$3
bootloader=$fw/firmware/bootloader/rtcanboot-bootloader.bin
app=$fw/firmware/example-app/example-app.elf
if [ ! -f "$bootloader" ] || [ ! -f "$app" ]; then
  echo "SKIP: firmware not built in $fw (script/build builds it)"
  exit 77
fi
if [ ! -x "$twin" ] || [ ! -x "$cli" ]; then
  echo "SKIP: $twin or $cli not built"
  exit 77
fi

tmp=$(mktemp -d)
twin_pid=
cleanup() {
  [ -n "$twin_pid" ] && kill "$twin_pid" 2>/dev/null && wait "$twin_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  echo "--- twin log"; tail -n 30 "$tmp/twin.log"
  exit 1
}

"$twin" --flash "$tmp/flash.bin" --write-bootloader "$bootloader" --node-id 5 --bitrate 500000 \
  --socketcand 127.0.0.1:0 --run-for 36000000 >"$tmp/twin.log" 2>&1 &
twin_pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n -E 's/.*(listening on|socketcand on) 127\.0\.0\.1:([1-9][0-9]*).*/\2/p' "$tmp/twin.log" | head -n 1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || fail "the twin did not report its socketcand port"
bus=socketcand://127.0.0.1:$port/can0
echo "twin on $bus"

"$cli" --bus "$bus" info --node 5 --json >"$tmp/info1" || fail "info before flashing"
grep -q '"running": "bootloader"' "$tmp/info1" || fail "no bootloader: $(cat "$tmp/info1")"

"$cli" flash --bus "$bus" --node 5 "$app" >"$tmp/flash" 2>&1 || fail "flash: $(cat "$tmp/flash")"
cat "$tmp/flash"
grep -q "node 5 is up" "$tmp/flash" || fail "no heartbeat from the application"

"$cli" --bus "$bus" info --node 5 --json >"$tmp/info2" || fail "info after flashing"
grep -q '"running": "application"' "$tmp/info2" || fail "application not running: $(cat "$tmp/info2")"
cat "$tmp/info2"

# Back to the bootloader and again (the update over a running application).
"$cli" --bus "$bus" -q flash --force --image-version 2 --node 5 "$app" || fail "second flash"
"$cli" --bus "$bus" info --node 5 --json >"$tmp/info3" || fail "info after the second flash"
grep -q '"running": "application"' "$tmp/info3" || fail "application not running after the second flash"
echo "PASS"
