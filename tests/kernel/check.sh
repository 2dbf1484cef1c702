#!/usr/bin/env bash
# One kernel test's verdict (ctest kernel.NAME): the result that tests/kernel/vm.sh brought back
# from the VM, plus host-side checks of its attachments (check_candump.py for candump logs).
#   check.sh OUT_DIR NAME [CHECKER ARGS...]
set -u
out=$1 name=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$out/skipped" ]; then
  echo "SKIP: the kernel VM did not run: $(cat "$out/skipped")"
  exit 77
fi
res=$out/results
if [ ! -f "$res/$name.rc" ]; then
  echo "FAIL: no result for $name from the VM (see $out/console.log)"
  exit 1
fi
cat "$res/$name.log"
rc=$(cat "$res/$name.rc")
if [ "$rc" != 0 ]; then
  echo "FAIL: $name exited $rc inside the VM"
  exit 1
fi
if [ -f "$res/$name.candump" ]; then
  python3 "$here/check_candump.py" "$res/$name.candump" "$@" || exit 1
fi
echo "PASS"
