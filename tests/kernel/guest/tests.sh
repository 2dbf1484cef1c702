#!/bin/sh
# The kernel tests, run by /init inside the VM (tests/kernel/vm.sh). Each test is a shell function
# t_NAME run in a subshell; its output, its exit status and attached files go to /dev/ttyS1,
# framed by @@ lines, and become the ctest test kernel.NAME on the host (tests/kernel/check.sh).
#   tests.sh [NAME...]    (no name: all tests)
OUT=/dev/ttyS1
FW=/fw
BL=$FW/rtcanboot-bootloader.bin
APP=$FW/example-app.elf
RATE=500000

say() { echo "$*"; }
fail() { echo "FAIL: $*"; exit 1; }

# Attach a file to the current test's results (gzip + base64 over the serial line).
attach() {
  echo "@@FILE $CURRENT $2" >$OUT
  gzip -c "$1" | base64 >$OUT
  echo "@@ENDFILE" >$OUT
}

vcan() {  # vcan NAME: a fresh vcan interface, up
  ip link del dev "$1" 2>/dev/null
  ip link add dev "$1" type vcan || fail "ip link add $1 type vcan"
  ip link set "$1" up || fail "ip link set $1 up"
}

# start_twin NAME NODE IFACE [twin options]: a twin board with the bootloader on a fresh flash,
# joined to IFACE; waits until the bootloader answers SDO (node's 0x1000).
start_twin() {
  name=$1 node=$2 iface=$3
  shift 3
  rm -f /tmp/$name.flash
  rtcanboot-twin --flash /tmp/$name.flash --write-bootloader $BL --node-id $node --bitrate $RATE \
    --bus socketcan://$iface "$@" >/tmp/$name.log 2>&1 &
  echo $! >/tmp/$name.pid
  i=0
  while ! rtcanboot --bus socketcan://$iface -q --timeout 500 --retries 0 info --node $node >/dev/null 2>&1; do
    i=$((i + 1))
    kill -0 "$(cat /tmp/$name.pid)" 2>/dev/null || { cat /tmp/$name.log; fail "twin $name exited"; }
    [ $i -lt 60 ] || { cat /tmp/$name.log; fail "twin $name (node $node) does not answer on $iface"; }
    sleep 0.5
  done
}

wait_node() {  # wait_node NODE IFACE: until the node answers SDO (at most 20 s)
  i=0
  while ! rtcanboot --bus socketcan://$2 -q --timeout 500 --retries 0 info --node $1 >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 40 ] || fail "node $1 does not answer on $2"
    sleep 0.5
  done
}

stop_twin() {  # stop_twin NAME: SIGTERM, wait, show its summary; fail on a FAULT report
  pid=$(cat /tmp/$1.pid)
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  grep -E "frames to the interface|FAULT" /tmp/$1.log
  ! grep -q FAULT /tmp/$1.log || fail "twin $1 reported a fault"
}

start_dump() {  # start_dump IFACE FILE
  candump -L "$1" >"$2" &
  echo $! >/tmp/candump.pid
  sleep 0.2
}
stop_dump() { kill "$(cat /tmp/candump.pid)" 2>/dev/null; wait "$(cat /tmp/candump.pid)" 2>/dev/null; }

# Runs CMD, expects exit status RC and output matching the extended regex RE.
expect() {
  rc=$1 re=$2
  shift 2
  out=$("$@" 2>&1)
  got=$?
  echo "\$ $* -> $got: $out"
  [ "$got" = "$rc" ] || fail "'$*' exited $got, expected $rc"
  echo "$out" | grep -Eq "$re" || fail "'$*' does not say /$re/"
}

# --- the tests ----------------------------------------------------------------------------------

# The host tool updates a twin on vcan0 end to end; candump logs the whole exchange (checked on
# the host by check_candump.py).
t_flash_vcan() {
  vcan vcan0
  start_dump vcan0 /tmp/flash.candump
  start_twin twin1 23 vcan0
  rtcanboot --bus socketcan://vcan0 info --node 23 || fail "info before flashing"
  rtcanboot --bus socketcan://vcan0 info --node 23 | grep -q "running *bootloader" || fail "info does not show the bootloader"
  rtcanboot --bus socketcan://vcan0 --timeout 5000 flash --node 23 $APP || fail "flash exited $?"
  rtcanboot --bus socketcan://vcan0 info --node 23 --json >/tmp/info.json || fail "info after flashing"
  cat /tmp/info.json
  grep -q '"running": "application"' /tmp/info.json || fail "the application does not run"
  rtcanboot --bus socketcan://vcan0 stop --node 23 || fail "stop exited $?"
  wait_node 23 vcan0
  rtcanboot --bus socketcan://vcan0 info --node 23 --json >/tmp/info2.json || fail "info after stop"
  grep -q '"running": "bootloader"' /tmp/info2.json || fail "not back in the bootloader: $(cat /tmp/info2.json)"
  stop_twin twin1
  stop_dump
  grep -q "example application, node 23" /tmp/twin1.log || fail "no console line of the application"
  echo "candump: $(wc -l </tmp/flash.candump) frames"
  attach /tmp/flash.candump candump
}

# Error paths of the host tool on SocketCAN: exit code 4 and a message that says what is wrong.
t_errors() {
  vcan vcan0
  expect 4 "no such CAN interface" rtcanboot --bus socketcan://nosuch0 info --node 5
  expect 4 "not a CAN interface" rtcanboot --bus socketcan://lo info --node 5
  out=$(rtcanboot --bus socketcan://lo info --node 5 2>&1)
  ! echo "$out" | grep -q "bitrate" || fail "socketcan://lo gets a CAN bit-rate hint: $out"
  ip link set vcan0 down
  expect 4 "is down" rtcanboot --bus socketcan://vcan0 info --node 5
  out=$(rtcanboot --bus socketcan://vcan0 info --node 5 2>&1)
  ! echo "$out" | grep -q "bitrate" || fail "a vcan interface gets a bit-rate hint: $out"
  ip link set vcan0 up
  # Set down while a command waits on it: "went down", not "disappeared".
  (sleep 2; ip link set vcan0 down) &
  bg=$!
  expect 4 "went down" rtcanboot --bus socketcan://vcan0 scan --no-probe --listen 5000
  wait $bg
  out=$(rtcanboot --bus socketcan://vcan0 scan --no-probe --listen 100 2>&1)
  ip link set vcan0 up
  # Removed while a command waits on it.
  (sleep 2; ip link del dev vcan0) &
  bg=$!
  expect 4 "disappeared" rtcanboot --bus socketcan://vcan0 scan --no-probe --listen 5000
  wait $bg
  # The twin says the same things.
  expect 1 "no such interface" rtcanboot-twin --flash /tmp/e.flash --bus socketcan://nosuch0 --run-for 1
  expect 1 "not a CAN interface" rtcanboot-twin --flash /tmp/e.flash --bus socketcan://lo --run-for 1
}

# scan and info against a twin and against nodes that exist only as cansend frames.
t_scan_info() {
  vcan vcan0
  start_twin twin1 23 vcan0
  # Node 40: a boot-up, then heartbeats (pre-operational) while the scan listens; node 41: one
  # operational heartbeat. Neither answers SDO.
  (cansend vcan0 728#00; i=0; while [ $i -lt 12 ]; do cansend vcan0 728#7F; cansend vcan0 729#05; sleep 0.2; i=$((i + 1)); done) &
  injector=$!
  rtcanboot --bus socketcan://vcan0 scan --json >/tmp/scan.json || fail "scan exited $?"
  wait $injector
  cat /tmp/scan.json
  for n in 23 40 41; do
    grep -Eq "\"node\": $n[,}]" /tmp/scan.json || fail "scan did not list node $n"
  done
  rtcanboot --bus socketcan://vcan0 scan >/tmp/scan.txt 2>&1 || fail "scan (text) exited $?"
  cat /tmp/scan.txt
  grep -Eq "^ *23 " /tmp/scan.txt || fail "text scan did not list node 23"
  rtcanboot --bus socketcan://vcan0 info --node 23 | tee /tmp/info.txt
  grep -q "running *bootloader" /tmp/info.txt || fail "info of the twin"
  # info about a node that only sends heartbeats: no SDO answer, exit 5.
  (i=0; while [ $i -lt 10 ]; do cansend vcan0 728#7F; sleep 0.2; i=$((i + 1)); done) &
  injector=$!
  expect 5 "node 40" rtcanboot --bus socketcan://vcan0 --timeout 300 info --node 40
  wait $injector
  stop_twin twin1
}

# Two twins with different node-IDs on vcan0, updated one after the other.
t_two_twins() {
  vcan vcan0
  start_dump vcan0 /tmp/two.candump
  start_twin twinA 23 vcan0
  start_twin twinB 24 vcan0
  rtcanboot --bus socketcan://vcan0 scan | tee /tmp/scan.txt
  for n in 23 24; do
    rtcanboot --bus socketcan://vcan0 --timeout 5000 flash --node $n $APP || fail "flash of node $n exited $?"
  done
  for n in 23 24; do
    rtcanboot --bus socketcan://vcan0 info --node $n --json >/tmp/info$n.json || fail "info $n"
    cat /tmp/info$n.json
    grep -q '"running": "application"' /tmp/info$n.json || fail "node $n does not run the application"
  done
  stop_twin twinA
  stop_twin twinB
  stop_dump
  grep -q "example application, node 23" /tmp/twinA.log || fail "twin A did not run node 23's application"
  grep -q "example application, node 24" /tmp/twinB.log || fail "twin B did not run node 24's application"
  attach /tmp/two.candump candump
}

# A 10-frame transmit queue (tbf qdisc, 16 bytes per CAN frame) forces ENOBUFS during the block
# bursts: the transfer still succeeds and the host tool reports how often it had to retry.
t_enobufs() {
  vcan vcan0
  start_twin twin1 23 vcan0
  /usr/sbin/tc qdisc add dev vcan0 root tbf rate 1mbit burst 160 limit 160 || fail "tc qdisc add tbf"
  /usr/sbin/tc qdisc show dev vcan0
  rtcanboot --bus socketcan://vcan0 --timeout 10000 flash --node 23 $APP >/tmp/flash.out 2>&1
  rc=$?
  cat /tmp/flash.out
  [ $rc -eq 0 ] || fail "flash through a 10-frame queue exited $rc"
  grep -Eq "transmit queue full \(ENOBUFS\).*\([1-9][0-9]* retries\)" /tmp/flash.out || fail "no retry count reported"
  /usr/sbin/tc -s qdisc show dev vcan0
  rtcanboot --bus socketcan://vcan0 info --node 23 --json | grep -q '"running": "application"' || fail "application not running"
  stop_twin twin1
}

# Frames the kernel delivers but CiA 301 forbids: the bootloader stays silent (docs/canopen.md:
# SDO requests need DLC 8, no RTR, no extended ids), error frames map onto the twin's bus, and the
# node still answers afterwards.
t_bad_input() {
  vcan vcan0
  start_twin twin1 23 vcan0
  start_dump vcan0 /tmp/bad.candump
  cansend vcan0 617#40001000        # SDO upload request of 0x1000 with DLC 4
  cansend vcan0 617#4000100000      # DLC 5
  cansend vcan0 617#R               # RTR on the SDO request id
  cansend vcan0 617#R8
  cansend vcan0 00000617#4000100000000000  # extended id colliding with 0x617
  cansend vcan0 00000597#4300100092010000  # extended id colliding with the response id
  cansend vcan0 000#81              # NMT reset node without its node-ID byte (DLC 1): ignored
  cansend vcan0 20000004#0004000000000000  # error frame: controller problem (rx warning)
  cansend vcan0 20000008#0000020000000000  # error frame: protocol violation (form error)
  cansend vcan0 20000040#0000000000000000  # error frame: bus-off of the interface's controller
  sleep 1
  stop_dump
  cat /tmp/bad.candump
  ! grep -q " 597#" /tmp/bad.candump || fail "the node answered a malformed SDO request"
  ! grep -q " 717#00" /tmp/bad.candump || fail "the node reset on an NMT frame with DLC 1"
  grep -q "socketcan.*protocol error" /tmp/twin1.log || fail "the twin did not map the error frame: $(cat /tmp/twin1.log)"
  grep -q "socketcan.*reports bus-off" /tmp/twin1.log || fail "the twin did not map the bus-off error frame: $(cat /tmp/twin1.log)"
  rtcanboot --bus socketcan://vcan0 info --node 23 >/tmp/info.txt || fail "the node no longer answers"
  grep -q "running *bootloader" /tmp/info.txt || fail "info after the bad frames"
  stop_twin twin1
}

# slcan through the kernel: the twin presents an slcan adapter on a pty (--slcan-pty), slcand
# attaches it as slcan0 and the host tool flashes through socketcan://slcan0; then, with slcand
# gone, the host tool uses the same adapter directly as slcan:///dev/pts/N (info, stop: the node
# returns to its bootloader).
t_slcan() {
  rm -f /tmp/slc.flash
  rtcanboot-twin --flash /tmp/slc.flash --write-bootloader $BL --node-id 23 --bitrate $RATE --slcan-pty >/tmp/slc.log 2>&1 &
  twin=$!
  echo $twin >/tmp/slc.pid
  pty=
  i=0
  while [ -z "$pty" ] && [ $i -lt 50 ]; do
    pty=$(sed -n 's/.*slcan adapter on \(\/dev\/pts\/[0-9]*\).*/\1/p' /tmp/slc.log)
    i=$((i + 1))
    sleep 0.1
  done
  [ -n "$pty" ] || { cat /tmp/slc.log; fail "the twin did not print its pty"; }
  echo "adapter on $pty"
  slcand -o -c -s6 -F "$pty" slcan0 &
  slcand=$!
  i=0
  while ! ip link show slcan0 >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 50 ] || fail "slcand did not create slcan0"
    sleep 0.1
  done
  ip link set slcan0 up || fail "ip link set slcan0 up"
  ip link show slcan0
  start_dump slcan0 /tmp/slcan.candump
  wait_node 23 slcan0
  rtcanboot --bus socketcan://slcan0 --timeout 5000 flash --node 23 $APP || fail "flash through slcan0 exited $?"
  rtcanboot --bus socketcan://slcan0 info --node 23 --json >/tmp/i1.json || fail "info through slcan0"
  grep -q '"running": "application"' /tmp/i1.json || fail "the application does not run: $(cat /tmp/i1.json)"
  stop_dump
  kill $slcand
  wait $slcand
  i=0
  while ip link show slcan0 >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 50 ] || fail "slcan0 stays after slcand ended"
    sleep 0.1
  done
  # The same adapter, directly.
  rtcanboot --bus "slcan://$pty?bitrate=$RATE" info --node 23 --json >/tmp/i2.json || fail "info over slcan://$pty exited $?"
  cat /tmp/i2.json
  grep -q '"running": "application"' /tmp/i2.json || fail "info over slcan://$pty"
  rtcanboot --bus "slcan://$pty?bitrate=$RATE" stop --node 23 || fail "stop over slcan://$pty exited $?"
  i=0
  until rtcanboot --bus "slcan://$pty?bitrate=$RATE" -q info --node 23 --json >/tmp/i3.json 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 20 ] || fail "node 23 does not answer over slcan://$pty after the stop"
    sleep 0.5
  done
  grep -q '"running": "bootloader"' /tmp/i3.json || fail "not back in the bootloader: $(cat /tmp/i3.json)"
  stop_twin slc
  attach /tmp/slcan.candump candump
}

# ---------------------------------------------------------------------------------------------------
all="flash_vcan scan_info two_twins errors enobufs bad_input slcan"
[ $# -gt 0 ] && [ -n "$1" ] && all="$*"
passed=0 failed=0
LIMIT=${LIMIT:-150}
for t in $all; do
  CURRENT=$t
  echo "@@BEGIN $t" >$OUT
  start=$(date +%s)
  ( set +e; ( "t_$t" ); echo $? >/tmp/$t.rc ) >/tmp/$t.out 2>&1 &
  tp=$!
  # Watchdog: a test that hangs is killed after LIMIT seconds and fails.
  ( sleep $LIMIT; echo "FAIL: $t did not finish within $LIMIT s" >>/tmp/$t.out; kill -9 $tp ) &
  wp=$!
  wait $tp
  kill $wp 2>/dev/null
  # Leave nothing running for the next test.
  for p in $(pidof rtcanboot-twin rtcanboot candump cansend slcand cangen 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  rc=$(cat /tmp/$t.rc 2>/dev/null || echo 124)
  cat /tmp/$t.out >$OUT
  echo "($(( $(date +%s) - start )) s in the VM)" >$OUT
  echo "@@END $t $rc" >$OUT
  cat /tmp/$t.out
  echo "kernel test $t: exit $rc"
  if [ "$rc" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "@@DONE $passed passed, $failed failed" >$OUT
