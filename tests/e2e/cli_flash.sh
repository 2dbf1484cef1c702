#!/usr/bin/env bash
# CLI-level end-to-end test: `rtcanboot-twin` runs the real bootloader on a fresh flash file and
# serves its bus as socketcand on 127.0.0.1; `rtcanboot flash` installs the example application
# over it and `rtcanboot info` must then report the application running; a second, forced
# update over the running application installs a new image version. Stops by itself and
# leaves nothing running (the twin is killed in a trap).
#   cli_flash.sh RTCANBOOT_TWIN RTCANBOOT_CLI FIRMWARE_BUILD_DIR
# Exit 77 = skipped (firmware or programs not built).
set -u
twin=$1
cli=$2
fw=$3
bootloader=$fw/firmware/bootloader/rtcanboot-bootloader.bin
app=$fw/firmware/example-app/example-app.elf
node=23
needs="$bootloader $app"

source "$(dirname "$0")/cli_lib.sh"

# A fresh flash file (created erased), the bootloader written like a debug probe, the provisioning
# record for node 23 at 500 kbit/s. --run-for bounds the twin even if the trap never runs (virtual
# time follows the wall clock while a client is connected).
start_twin "$tmp/twin.log" --write-bootloader "$bootloader" --node-id $node --bitrate 500000
[ "$(stat -c %s "$tmp/flash.bin")" = 4194304 ] || fail "flash file is not 4 MiB"

"$cli" info --bus "$bus" --node $node >"$tmp/info0" 2>&1 || fail "info before flashing: $(cat "$tmp/info0")"
grep -qi "bootloader" "$tmp/info0" || fail "info before flashing does not name the bootloader: $(cat "$tmp/info0")"

"$cli" flash --bus "$bus" --timeout 3000 --node $node "$app" >"$tmp/flash.out" 2>&1
status=$?
cat "$tmp/flash.out"
[ $status -eq 0 ] || fail "rtcanboot flash exited with $status"

"$cli" info --bus "$bus" --node $node >"$tmp/info1" 2>&1 || fail "info after flashing: $(cat "$tmp/info1")"
cat "$tmp/info1"
"$cli" info --bus "$bus" --node $node --json >"$tmp/info1.json" 2>&1 || fail "info --json: $(cat "$tmp/info1.json")"
grep -q '"running": "application"' "$tmp/info1.json" || fail "the application does not run: $(cat "$tmp/info1.json")"
grep -Eq "running +application" "$tmp/info1" || fail "info does not say the application runs"
grep -q '"flash_status": 0[,}]' "$tmp/info1.json" || grep -q '"flash_status": 0$' "$tmp/info1.json" \
  || fail "flash status not 0: $(cat "$tmp/info1.json")"

# The application is on the bus: its console line came from the twin's board.
grep -q "example application, node $node" "$tmp/twin.log" || fail "no console line of the application"

# An update over the running application (it is asked back into the bootloader first); --force
# skips the 0x1F56 shortcut, the new image version must then be installed.
"$cli" --bus "$bus" -q flash --timeout 3000 --force --image-version 2 --node $node "$app" >"$tmp/flash2.out" 2>&1 \
  || fail "second flash: $(cat "$tmp/flash2.out")"
"$cli" info --bus "$bus" --node $node --json >"$tmp/info2.json" 2>&1 || fail "info after the second flash"
grep -q '"running": "application"' "$tmp/info2.json" || fail "application not running after the second flash"
grep -Eq '"image_version": 2([^0-9]|$)' "$tmp/info2.json" \
  || fail "image version 2 not installed: $(cat "$tmp/info2.json")"
if grep -q "FAULT" "$tmp/twin.log"; then
  fail "the twin reported a fault"
fi
echo "PASS"
