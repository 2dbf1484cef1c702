#!/usr/bin/env bash
# The fleet demo body (script/demo-fleet builds first): eight emulated RT1064 boards, nodes 10 to
# 17, on one virtual CAN bus at 1 Mbit/s, updated at once by the host tool through the twin's
# socketcand endpoint.
set -euo pipefail
cd "$(dirname "$0")/../.."

source script/lib/demo-common.sh
nodes=(10 11 12 13 14 15 16 17)

step "Starting the twin: eight boards (nodes ${nodes[0]}..${nodes[7]}) on one bus at 1 Mbit/s, each a fresh flash with the bootloader"
boards=()
for n in "${nodes[@]:1}"; do
  boards+=(--board "flash=$work/node$n.flash,bootloader=$bootloader,node-id=$n,bitrate=1000000,name=node$n")
done
"$twin" --flash "$work/node${nodes[0]}.flash" --write-bootloader "$bootloader" --node-id "${nodes[0]}" \
  --bitrate 1000000 "${boards[@]}" --socketcand "127.0.0.1:$port" >"$work/twin.log" 2>&1 &
twin_pid=$!

for n in "${nodes[@]}"; do
  for _ in $(seq 1 200); do
    if "$tool" --bus "$bus" --quiet --timeout 200 info --node "$n" >/dev/null 2>&1; then break; fi
    kill -0 "$twin_pid" 2>/dev/null || { cat "$work/twin.log"; echo "demo-fleet: the twin stopped" >&2; exit 1; }
    sleep 0.1
  done
done

step "Eight bootloaders on the bus, no application yet"
"$tool" --bus "$bus" scan

step "Updating all eight at once: one download to a lead, the other seven follow it from the bus"
# On a terminal the table is redrawn in place; on a pipe it prints a line per change.
"$tool" --bus "$bus" --timeout 3000 flash --nodes "${nodes[0]}-${nodes[7]}" "$app"

step "Eight applications run: their heartbeats say OPERATIONAL"
"$tool" --bus "$bus" scan

echo
echo "demo-fleet: done. One CiA 302-3 download updated eight nodes; each checked and committed the image itself."
