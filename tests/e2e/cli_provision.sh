#!/usr/bin/env bash
# Key provisioning over CAN and anti-rollback end to end (docs/security.md): `rtcanboot-twin` runs
# the unmodified keyless bootloader. `rtcanboot provision-key` writes the SHA-256 of RFC 8032
# TEST 1's public key into it (0x5F03); a second provisioning with another key is refused (exit 7)
# and changes nothing. Then `rtcanboot flash`: a signed image (counter 3) is installed and runs,
# `info` shows security counter 3; an unsigned image and a signed one rolled back to counter 2
# are refused at their header (exit 7, "not signed", "rollback"), the installed application
# stays valid and runs again after `start`, and the counter stays 3. After a power cycle of the
# twin the key and the counter are still there. The twin is killed in a trap.
#   cli_provision.sh RTCANBOOT_TWIN RTCANBOOT_CLI FIRMWARE_BUILD_DIR
# Exit 77 = skipped (firmware or programs not built).
set -u
twin=$1
cli=$2
fw=$3
bootloader=$fw/firmware/bootloader/rtcanboot-bootloader.bin
app=$fw/firmware/example-app/example-app.elf
vectors=$(cd "$(dirname "$0")/../vectors" && pwd)
node=26
needs="$bootloader $app"

source "$(dirname "$0")/cli_lib.sh"

key=$tmp/test1.key
cp "$vectors/rfc8032_test1.key" "$key"
chmod 600 "$key"
"$cli" -q keygen --out "$tmp/other.key" || fail "keygen"
"$cli" -q pack "$app" -o "$tmp/signed3.rcb" --sign "$key" --security-counter 3 --image-version 3 \
  || fail "pack --sign (counter 3)"
"$cli" -q pack "$app" -o "$tmp/unsigned.rcb" --image-version 4 || fail "pack"
"$cli" -q pack "$app" -o "$tmp/signed2.rcb" --sign "$key" --security-counter 2 --image-version 5 \
  || fail "pack --sign (counter 2)"

start_twin "$tmp/twin.log" --write-bootloader "$bootloader" --node-id $node --bitrate 500000
sleep 0.5
info() {  # info FILE
  "$cli" info --bus "$bus" --node $node --json >"$1" 2>&1 || fail "info: $(cat "$1")"
}
info "$tmp/info0.json"
grep -q '"key_state": 0' "$tmp/info0.json" || fail "a keyless node does not say so: $(cat "$tmp/info0.json")"

# 1. Provision TEST 1's key; then another key is refused and changes nothing.
"$cli" provision-key --bus "$bus" --node $node --key "$vectors/rfc8032_test1.pub" \
  >"$tmp/provision1.out" 2>&1 || fail "provision-key: $(cat "$tmp/provision1.out")"
cat "$tmp/provision1.out"
"$cli" provision-key --bus "$bus" --node $node --key "$tmp/other.key.pub" >"$tmp/provision2.out" 2>&1
status=$?
cat "$tmp/provision2.out"
[ $status -eq 7 ] || fail "a second provisioning exited with $status, expected 7"
"$cli" -q provision-key --bus "$bus" --node $node --key "$vectors/rfc8032_test1.pub" \
  || fail "provision-key with the key the node holds should succeed"
info "$tmp/info1.json"
grep -q '"key_state": 2' "$tmp/info1.json" || fail "not provisioned: $(cat "$tmp/info1.json")"

# 2. Signed, counter 3: installed, runs, the counter is recorded.
"$cli" flash --bus "$bus" --timeout 3000 --node $node "$tmp/signed3.rcb" >"$tmp/flash1.out" 2>&1 \
  || fail "flash of the signed image: $(cat "$tmp/flash1.out")"
info "$tmp/info2.json"
grep -q '"running": "application"' "$tmp/info2.json" || fail "the signed application does not run"
grep -Eq '"image_version": 3([^0-9]|$)' "$tmp/info2.json" || fail "image version 3 not installed"
grep -Eq '"security_counter": 3([^0-9]|$)' "$tmp/info2.json" \
  || fail "the application does not show counter 3: $(cat "$tmp/info2.json")"
crc=$(sed -n -E 's/.*"software_id": ([0-9]+).*/\1/p' "$tmp/info2.json" | head -n 1)
[ -n "$crc" ] || fail "no software_id in info"

# 3 + 4. Unsigned, then rolled back below the recorded counter: refused, nothing written.
refuse() {  # refuse CONTAINER TEXT
  "$cli" flash --bus "$bus" --timeout 3000 --no-clear --force --full --node $node "$1" >"$tmp/refused.out" 2>&1
  local status=$?
  cat "$tmp/refused.out"
  [ $status -eq 7 ] || fail "flash of $(basename "$1") exited with $status, expected 7 (rejected)"
  grep -q "$2" "$tmp/refused.out" || fail "the refusal does not say '$2'"
  info "$tmp/info.json"
  grep -Eq '"security_counter": 3([^0-9]|$)' "$tmp/info.json" \
    || fail "the bootloader does not show counter 3: $(cat "$tmp/info.json")"
  grep -q "\"software_id\": $crc" "$tmp/info.json" \
    || fail "the installed image changed: $(cat "$tmp/info.json")"
  "$cli" -q start --bus "$bus" --node $node >"$tmp/start.out" 2>&1 \
    || fail "start after the refusal: $(cat "$tmp/start.out")"
  info "$tmp/info.json"
  grep -q '"running": "application"' "$tmp/info.json" \
    || fail "the application does not run after the refusal: $(cat "$tmp/info.json")"
}
refuse "$tmp/unsigned.rcb" "not signed"
refuse "$tmp/signed2.rcb" "rollback"

# 5. Power cycle: key and counter are on the flash.
stop_twin
start_twin "$tmp/twin2.log" --bus-bitrate 500000
sleep 1
info "$tmp/info3.json"
grep -q '"running": "application"' "$tmp/info3.json" || fail "the application does not run after the power cycle"
grep -Eq '"security_counter": 3([^0-9]|$)' "$tmp/info3.json" || fail "counter lost: $(cat "$tmp/info3.json")"
"$cli" -q stop --bus "$bus" --node $node || fail "stop"
info "$tmp/info4.json"
grep -q '"key_state": 2' "$tmp/info4.json" || fail "key lost: $(cat "$tmp/info4.json")"
if grep -q "FAULT" "$tmp/twin.log" "$tmp/twin2.log"; then
  fail "the twin reported a fault"
fi
echo "PASS: key provisioned once; signed accepted; unsigned and rolled-back refused; counter 3 kept; the application still runs"
