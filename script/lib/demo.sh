#!/usr/bin/env bash
# The demo body (script/demo builds first): one emulated RT1064 on a virtual CAN bus at 1 Mbit/s,
# updated over CAN by the host tool through the twin's socketcand endpoint.
set -euo pipefail
cd "$(dirname "$0")/../.."

source script/lib/demo-common.sh
node=5

step "Starting the twin: a fresh 4 MiB flash, the bootloader written at 0x7000_0000, node $node at 1 Mbit/s"
"$twin" --flash "$work/board.flash" --write-bootloader "$bootloader" --node-id $node --bitrate 1000000 \
  --socketcand "127.0.0.1:$port" >"$work/twin.log" 2>&1 &
twin_pid=$!

# Wait for the socketcand endpoint, then for the bootloader to answer SDO.
for _ in $(seq 1 100); do
  if "$tool" --bus "$bus" --quiet --timeout 200 info --node $node >/dev/null 2>&1; then break; fi
  kill -0 "$twin_pid" 2>/dev/null || { cat "$work/twin.log"; echo "demo: the twin stopped" >&2; exit 1; }
  sleep 0.1
done
sed -n '1,20p' "$work/twin.log"

step "The bootloader runs and has no application yet"
"$tool" --bus "$bus" scan
"$tool" --bus "$bus" info --node $node | grep -E 'running|boot reason|program|flash status'

step "Flashing the example application over CAN (CiA 302-3 program download)"
"$tool" --bus "$bus" flash --node $node "$app"

step "The application runs: its heartbeat says OPERATIONAL"
"$tool" --bus "$bus" scan
"$tool" --bus "$bus" info --node $node | grep -E 'device name|software version|running|program|software id'

step "Asking the application to return to the bootloader (0x1F51:1 = 0)"
"$tool" --bus "$bus" stop --node $node
for _ in $(seq 1 50); do
  if "$tool" --bus "$bus" --quiet --timeout 200 info --node $node 2>/dev/null | grep -q 'running *bootloader'; then break; fi
  sleep 0.1
done
"$tool" --bus "$bus" info --node $node | grep -E 'running|boot reason|program|software id'

step "The twin's console"
sed 's/^/  /' "$work/twin.log" | tail -n 12

echo
echo "demo: done. The bootloader flashed the application over CAN, started it, and took control back."
