#!/usr/bin/env bash
# Signed images end to end (docs/security.md): `rtcanboot-twin` runs rtcanboot-bootloader-testkey,
# the bootloader built with the RFC 8032 TEST 1 public key as its key record and minimum security
# counter 1. `rtcanboot pack --sign` signs the example application with TEST 1's (published)
# secret key. A signed image with counter 2 is installed and runs; an unsigned image and a signed
# one with counter 0 (rolled back) are refused at their header (0x1F57 code 65, details 25 and 29,
# exit 7) with `flash --no-clear`, and the installed application stays valid: `start` runs it
# again. `verify` agrees with the node. Stops by itself; the twin is killed in a trap.
#   cli_signed.sh RTCANBOOT_TWIN RTCANBOOT_CLI FIRMWARE_BUILD_DIR
# Exit 77 = skipped (firmware or programs not built).
set -u
twin=$1
cli=$2
fw=$3
bootloader=$fw/firmware/bootloader-testkey/rtcanboot-bootloader-testkey.bin
app=$fw/firmware/example-app/example-app.elf
vectors=$(cd "$(dirname "$0")/../vectors" && pwd)
node=24
needs="$bootloader $app"

source "$(dirname "$0")/cli_lib.sh"

key=$tmp/test1.key
cp "$vectors/rfc8032_test1.key" "$key"
chmod 600 "$key"
"$cli" -q pack "$app" -o "$tmp/signed.rcb" --sign "$key" --security-counter 2 --image-version 2 \
  || fail "pack --sign"
"$cli" -q pack "$app" -o "$tmp/unsigned.rcb" --image-version 3 || fail "pack"
"$cli" -q pack "$app" -o "$tmp/rolled_back.rcb" --sign "$key" --security-counter 0 --image-version 4 \
  || fail "pack --sign (counter 0)"
"$cli" verify "$tmp/signed.rcb" --key "$vectors/rfc8032_test1.pub" >"$tmp/verify.out" 2>&1 \
  || fail "verify of the signed image: $(cat "$tmp/verify.out")"
"$cli" verify "$tmp/unsigned.rcb" --key "$vectors/rfc8032_test1.pub" >/dev/null 2>&1
[ $? -eq 7 ] || fail "verify accepted the unsigned image"

start_twin "$tmp/twin.log" --write-bootloader "$bootloader" --node-id $node --bitrate 500000
wait_log "$tmp/twin.log" "signed images only" 10 || fail "the bootloader does not say it holds a key"

# 1. Signed, counter 2: installed, started.
"$cli" flash --bus "$bus" --timeout 3000 --node $node "$tmp/signed.rcb" >"$tmp/flash1.out" 2>&1 \
  || fail "flash of the signed image: $(cat "$tmp/flash1.out")"
"$cli" info --bus "$bus" --node $node --json >"$tmp/info1.json" 2>&1 || fail "info after flashing"
grep -q '"running": "application"' "$tmp/info1.json" || fail "the signed application does not run"
grep -Eq '"image_version": 2([^0-9]|$)' "$tmp/info1.json" || fail "image version 2 not installed"
crc=$(sed -n -E 's/.*"software_id": ([0-9]+).*/\1/p' "$tmp/info1.json" | head -n 1)
[ -n "$crc" ] || fail "no software_id in info: $(cat "$tmp/info1.json")"

# 2 + 3. Unsigned, then rolled back: refused at the header, nothing written.
refuse() {  # refuse CONTAINER TEXT
  "$cli" flash --bus "$bus" --timeout 3000 --no-clear --force --node $node "$1" >"$tmp/refused.out" 2>&1
  local status=$?
  cat "$tmp/refused.out"
  [ $status -eq 7 ] || fail "flash of $(basename "$1") exited with $status, expected 7 (rejected)"
  grep -q "$2" "$tmp/refused.out" || fail "the refusal does not say '$2'"
  "$cli" info --bus "$bus" --node $node --json >"$tmp/info.json" 2>&1 || fail "info after the refusal"
  grep -q "\"software_id\": $crc" "$tmp/info.json" \
    || fail "the installed image changed: $(cat "$tmp/info.json")"
  "$cli" -q start --bus "$bus" --node $node >"$tmp/start.out" 2>&1 \
    || fail "start after the refusal: $(cat "$tmp/start.out")"
  "$cli" info --bus "$bus" --node $node --json >"$tmp/info.json" 2>&1 || fail "info after start"
  grep -q '"running": "application"' "$tmp/info.json" \
    || fail "the application does not run after the refusal: $(cat "$tmp/info.json")"
}
refuse "$tmp/unsigned.rcb" "not signed"
refuse "$tmp/rolled_back.rcb" "rollback"
if grep -q "FAULT" "$tmp/twin.log"; then
  fail "the twin reported a fault"
fi
echo "PASS: signed accepted; unsigned and rolled-back refused; the application still runs"
