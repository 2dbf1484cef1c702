#!/usr/bin/env bash
# Signed images end to end (docs/security.md): `rtcanboot-twin` runs rtcanboot-bootloader-testkey,
# the bootloader built with the RFC 8032 TEST 1 public key as its key record and minimum security
# counter 1. `rtcanboot pack --sign` signs the example application with TEST 1's (published)
# secret key. A signed image with counter 2 is installed and runs; an unsigned image and a signed
# one with counter 0 (rolled back) are refused at their header (0x1F57 code 65, details 25 and 29,
# exit 7) with `flash --no-clear`, and the installed application stays valid: `start` runs it
# again. `verify` agrees with the node. Then `configure`: an unsigned change of the provisioning
# record is refused (exit 7), a signed one (hold limit, node-ID) is stored and applies from the
# next reset. Stops by itself; the twin is killed in a trap.
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

# 4. The provisioning record (0x5F05): with a key only a signed request changes it. A 5 s hold
# limit then ends an entry request's hold by itself; a new node-ID applies from the next reset.
"$cli" -q stop --bus "$bus" --node $node >"$tmp/stop.out" 2>&1 || fail "stop: $(cat "$tmp/stop.out")"
"$cli" configure --bus "$bus" --node $node --set hold-limit=5 >"$tmp/configure.out" 2>&1
status=$?
cat "$tmp/configure.out"
[ $status -eq 7 ] || fail "an unsigned configure exited with $status, expected 7 (rejected)"
grep -q "sign the request with --key" "$tmp/configure.out" || fail "the refusal does not say why"
"$cli" configure --bus "$bus" --node $node --set hold-limit=5 --key "$key" >"$tmp/configure.out" 2>&1 \
  || fail "signed configure: $(cat "$tmp/configure.out")"
cat "$tmp/configure.out"
"$cli" configure --bus "$bus" --node $node >"$tmp/show.out" 2>&1 || fail "configure (show)"
grep -Eq "hold limit +5 s" "$tmp/show.out" || fail "the record does not hold the limit: $(cat "$tmp/show.out")"
"$cli" -q reset --bus "$bus" --node $node >"$tmp/reset.out" 2>&1 || fail "reset: $(cat "$tmp/reset.out")"
"$cli" -q stop --bus "$bus" --node $node >"$tmp/stop.out" 2>&1 || fail "stop: $(cat "$tmp/stop.out")"
"$cli" info --bus "$bus" --node $node --json >"$tmp/info.json" 2>&1 || fail "info after stop"
grep -q '"running": "bootloader"' "$tmp/info.json" || fail "stop did not hold the node: $(cat "$tmp/info.json")"
sleep 8
"$cli" info --bus "$bus" --node $node --json >"$tmp/info.json" 2>&1 || fail "info after the hold limit"
grep -q '"running": "application"' "$tmp/info.json" \
  || fail "the hold limit did not start the application: $(cat "$tmp/info.json")"
"$cli" -q stop --bus "$bus" --node $node >"$tmp/stop.out" 2>&1 || fail "stop: $(cat "$tmp/stop.out")"
"$cli" -q configure --bus "$bus" --node $node --set node-id=25 --key "$key" >"$tmp/configure.out" 2>&1 \
  || fail "signed configure of the node-ID: $(cat "$tmp/configure.out")"
"$cli" -q reset --bus "$bus" --node $node --no-wait >"$tmp/reset.out" 2>&1 || fail "reset: $(cat "$tmp/reset.out")"
sleep 1
"$cli" info --bus "$bus" --node 25 --json >"$tmp/info.json" 2>&1 \
  || fail "node 25 does not answer after the reset: $(cat "$tmp/info.json")"
grep -q '"running": "application"' "$tmp/info.json" || fail "node 25 does not run its application"

if grep -q "FAULT" "$tmp/twin.log"; then
  fail "the twin reported a fault"
fi
echo "PASS: signed accepted; unsigned and rolled-back refused; the application still runs; the provisioning record changes only by a signed request; the hold limit and the new node-ID apply"
