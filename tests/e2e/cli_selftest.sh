#!/usr/bin/env bash
# CLI-level end-to-end test of the bring-up self-test (docs/bring-up.md): `rtcanboot selftest`
# against the real bootloader in `rtcanboot-twin`, once with the readings the fact sheet expects
# (every check passes, exit 0) and once with the twin's hostile defaults (exit 11, the failing
# checks named: PLL3, FlexSPI2 clock, SRC_GPR5, SNVS LPGPR0, watchdogs).
#   cli_selftest.sh RTCANBOOT_TWIN RTCANBOOT_CLI FIRMWARE_BUILD_DIR
# Exit 77 = skipped (firmware or programs not built).
set -u
twin=$1
cli=$2
fw=$3
bootloader=$fw/firmware/bootloader/rtcanboot-bootloader.bin
node=25
needs=$bootloader
source "$(dirname "$0")/cli_lib.sh"

# 1. The fact sheet's readings: twelve passing lines.
start_twin "$tmp/twin1.log" --reading fact_sheet --write-bootloader "$bootloader" --node-id $node \
  --bitrate 500000
"$cli" selftest --bus "$bus" --node $node >"$tmp/pass.out" 2>&1
status=$?
cat "$tmp/pass.out"
[ $status -eq 0 ] || fail "selftest under the fact sheet's readings exited with $status"
[ "$(grep -c ' pass  ' "$tmp/pass.out")" = 12 ] || fail "not twelve passing checks"
grep -q "node $node: self-test passed (12 checks)" "$tmp/pass.out" || fail "no summary line"
grep -q "rtcanboot: self-test passed" "$tmp/twin1.log" || fail "the console does not show the result"
stop_twin

# 2. The same board under the hostile readings: exit 11, the failing checks named, also in JSON.
start_twin "$tmp/twin2.log" --reading hostile --bus-bitrate 500000
"$cli" selftest --bus "$bus" --node $node >"$tmp/fail.out" 2>&1
status=$?
cat "$tmp/fail.out"
[ $status -eq 11 ] || fail "selftest under the hostile readings exited with $status, not 11"
grep -q "5 of 12 checks failed: 5, 6, 10, 11, 12" "$tmp/fail.out" || fail "wrong failing checks"
grep -q "^10 FAIL  SRC_GPR5: cleared" "$tmp/fail.out" || fail "no SRC_GPR5 line"
"$cli" selftest --bus "$bus" --node $node --json >"$tmp/fail.json" 2>/dev/null
[ $? -eq 11 ] || fail "selftest --json did not exit 11"
grep -q '"passed": false, "failed_checks": \[5, 6, 10, 11, 12\]' "$tmp/fail.json" \
  || fail "JSON: $(cat "$tmp/fail.json")"

# 3. A node that is not there: exit 5.
"$cli" selftest --bus "$bus" --node 99 --timeout 200 >"$tmp/none.out" 2>&1
[ $? -eq 5 ] || fail "selftest of an absent node: $(cat "$tmp/none.out")"
echo "PASS"
