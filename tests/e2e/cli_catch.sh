#!/usr/bin/env bash
# CLI-level end-to-end test of the boot window at power-on (docs/host-tool.md, "Catching a node"):
# a confirmed application that faults a second after every start (the example application's
# "latefault" build) leaves a node that never answers again; `rtcanboot stop --catch` repeats
# its request while the twin power-cycles the board, catches the bootloader inside its listen
# window, and `rtcanboot flash` then installs the good example application.
#   cli_catch.sh RTCANBOOT_TWIN RTCANBOOT_CLI FIRMWARE_BUILD_DIR
# Exit 77 = skipped (firmware or programs not built).
set -u
twin=$1
cli=$2
fw=$3
bootloader=$fw/firmware/bootloader/rtcanboot-bootloader.bin
app=$fw/firmware/example-app/example-app.elf
late=$fw/firmware/example-app/example-app-latefault.elf
node=24
needs="$bootloader $app $late"

source "$(dirname "$0")/cli_lib.sh"

# 1. A fresh board; the late-faulting image is flashed and confirms, then faults. (`flash` does
#    not wait for the confirmation here: its heartbeat wait outlasts the image's one second.)
start_twin "$tmp/twin1.log" --write-bootloader "$bootloader" --node-id $node --bitrate 500000
"$cli" flash --bus "$bus" --timeout 3000 --confirm-timeout 0 --node $node "$late" >"$tmp/flash1.out" 2>&1 \
  || fail "flashing the late-faulting image: $(cat "$tmp/flash1.out")"
wait_log "$tmp/twin1.log" "executing an undefined instruction" 10 || fail "the image did not fault"
grep -q "example application: confirmed" "$tmp/twin1.log" || fail "the image did not confirm"
stop_twin

# 2. The same flash, powered on again: the confirmed image starts after the listen window and
#    faults again a second later. Only then does the catch start, so nothing but the window can
#    take its request: the twin cuts the power at 4 s and restores it 500 ms later.
start_twin "$tmp/twin2.log" --bus-bitrate 500000 --power-cut-at 4000 --restore-power-after 500
wait_log "$tmp/twin2.log" "executing an undefined instruction" 10 || fail "the image did not fault again"
"$cli" stop --catch --bus "$bus" --node $node --catch-timeout 20 >"$tmp/catch.out" 2>&1
status=$?
cat "$tmp/catch.out"
[ $status -eq 0 ] || fail "rtcanboot stop --catch exited with $status"
grep -q "node $node caught in the bootloader" "$tmp/catch.out" || fail "no 'caught' line"
grep -q "held in its boot window" "$tmp/catch.out" || fail "not caught through the boot window"
"$cli" info --bus "$bus" --node $node --json >"$tmp/info.json" 2>&1 || fail "info: $(cat "$tmp/info.json")"
grep -q '"running": "bootloader"' "$tmp/info.json" || fail "not in the bootloader: $(cat "$tmp/info.json")"
grep -Eq '"boot_reason": 4([^0-9]|$)' "$tmp/info.json" || fail "boot reason not 4: $(cat "$tmp/info.json")"

# 3. The good image installs, confirms and runs.
"$cli" flash --bus "$bus" --timeout 3000 --force --node $node "$app" >"$tmp/flash2.out" 2>&1 \
  || fail "flashing the good image: $(cat "$tmp/flash2.out")"
"$cli" info --bus "$bus" --node $node --json >"$tmp/info2.json" 2>&1 || fail "info after the repair"
grep -q '"running": "application"' "$tmp/info2.json" || fail "the good image does not run: $(cat "$tmp/info2.json")"

# 4. A catch that nobody answers: exit code 5.
"$cli" stop --catch --bus "$bus" --node 99 --catch-timeout 1 >"$tmp/none.out" 2>&1
status=$?
[ $status -eq 5 ] || fail "stop --catch of an absent node exited with $status: $(cat "$tmp/none.out")"
echo "PASS"
