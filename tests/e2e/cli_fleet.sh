#!/usr/bin/env bash
# CLI-level end-to-end test of the fleet update (docs/fleet-update.md): rtcanboot-twin with four
# boards on one bus served over socketcand (nodes 5, 6 and 7, and node 8 whose bootloader cannot
# follow), `rtcanboot flash --nodes 5-8 --json` and then `flash --all` with the table on a pipe.
#   cli_fleet.sh RTCANBOOT_TWIN RTCANBOOT_CLI FIRMWARE_BUILD_DIR
# Exit 77 = skipped (firmware or programs not built).
set -u
twin=$1
cli=$2
fw=$3
bootloader=$fw/firmware/bootloader/rtcanboot-bootloader.bin
nofollow=$fw/firmware/bootloader-variants/rtcanboot-bootloader-nofollow.bin
app=$fw/firmware/example-app/example-app.elf
needs="$bootloader $nofollow $app"

source "$(dirname "$0")/cli_lib.sh"

start_twin "$tmp/twin.log" --write-bootloader "$bootloader" --node-id 5 --bitrate 1000000 \
  --board "flash=$tmp/f6.bin,bootloader=$bootloader,node-id=6,bitrate=1000000" \
  --board "flash=$tmp/f7.bin,bootloader=$bootloader,node-id=7,bitrate=1000000" \
  --board "flash=$tmp/f8.bin,bootloader=$nofollow,node-id=8,bitrate=1000000"

# 1. Four nodes: node 5 leads, 6 and 7 follow, 8 is updated by unicast; JSON on stdout.
"$cli" flash --bus "$bus" --timeout 3000 --nodes 5-8 --json "$app" >"$tmp/fleet.json" 2>"$tmp/fleet.err"
status=$?
cat "$tmp/fleet.json" "$tmp/fleet.err"
[ $status -eq 0 ] || fail "flash --nodes 5-8 exited with $status"
python3 - "$tmp/fleet.json" <<'PY' || fail "the JSON result is not what the flow did"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] and r["exit_code"] == 0 and r["mode"] == "listen-along", r
assert r["leads"] == [5], r["leads"]
nodes = {n["node"]: n for n in r["nodes"]}
assert sorted(nodes) == [5, 6, 7, 8]
assert nodes[5]["role"] == "lead"
for f in (6, 7):
    assert nodes[f]["role"] == "follower" and nodes[f]["follow_state_text"] == "complete", nodes[f]
assert nodes[8]["role"] == "unicast" and "follow_state" not in nodes[8], nodes[8]
for n in nodes.values():
    assert n["ok"] and n["started"] and n["software_id"] == r["software_id"], n
PY
for n in 5 6 7 8; do
  "$cli" info --bus "$bus" --node $n --json >"$tmp/info$n.json" || fail "info --node $n"
  grep -q '"running": "application"' "$tmp/info$n.json" || fail "node $n does not run the application"
done

# 2. --all finds the four by their product; they already hold the image: nothing is sent.
"$cli" flash --bus "$bus" --timeout 3000 --all "$app" >"$tmp/all.out" 2>&1
status=$?
cat "$tmp/all.out"
[ $status -eq 0 ] || fail "flash --all exited with $status"
grep -q "4 of 4 node(s) hold image" "$tmp/all.out" || fail "flash --all did not report four nodes"
[ "$(grep -c "up to date" "$tmp/all.out")" -ge 4 ] || fail "flash --all sent an image again"

# 3. A bad list is a usage error before anything is sent.
"$cli" flash --bus "$bus" --nodes 9-3 "$app" >"$tmp/bad.out" 2>&1
status=$?
[ $status -eq 2 ] || fail "--nodes 9-3 exited with $status, expected 2"
grep -q "runs backwards" "$tmp/bad.out" || fail "no explanation for --nodes 9-3: $(cat "$tmp/bad.out")"
echo "PASS"
