#!/usr/bin/env bash
# The real-kernel rig (label kernel, docs/testing.md): boots a Debian kernel under
# `qemu-system-x86_64 -accel tcg -nic none` with an initramfs of busybox, the kernel's CAN modules,
# can-utils, iproute2's tc and the freshly built rtcanboot + rtcanboot-twin (with their shared
# libraries), runs tests/kernel/guest/tests.sh inside and reads the results back from a second
# serial port written to a file. No network between the VM and the host.
#   vm.sh RTCANBOOT_TWIN RTCANBOOT_CLI FIRMWARE_BUILD_DIR OUT_DIR [TEST...]
# Results: OUT_DIR/results/NAME.rc (exit status of the test in the VM), NAME.log, attachments.
# Exit 0 when the VM ran (whatever the tests said), 77 with OUT_DIR/skipped naming the reason when
# the rig cannot run here, 1 when the VM itself failed (no results, crash, timeout).
set -u
twin=$1 cli=$2 fw=$3 out=$4
shift 4
only="$*"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${RTCANBOOT_KERNEL_CACHE:-$repo/build/kernel-cache}
vm_timeout=${RTCANBOOT_VM_TIMEOUT:-600}
mkdir -p "$out"
rm -rf "$out/results" "$out/skipped" "$out/initramfs" "$out/console.log" "$out/serial.txt"
mkdir -p "$out/results"

skip() {
  echo "SKIP: $*"
  echo "$*" >"$out/skipped"
  exit 77
}

for tool in qemu-system-x86_64 cpio busybox tc; do
  command -v "$tool" >/dev/null 2>&1 ||
    skip "$tool is missing: run script/bootstrap as root (Debian packages qemu-system-x86, cpio, busybox-static, iproute2)"
done
bootloader=$fw/firmware/bootloader/rtcanboot-bootloader.bin
app=$fw/firmware/example-app/example-app.elf
for f in "$bootloader" "$app"; do [ -f "$f" ] || skip "$f is not built (arm-none-eabi cross build)"; done
for f in "$twin" "$cli"; do [ -x "$f" ] || skip "$f is not built"; done

# The kernel and can-utils: Debian packages fetched with apt-get download, unpacked with dpkg -x
# once and cached under build/ (the kernel package is the one linux-image-amd64 depends on).
fetch() {
  mkdir -p "$cache"
  if [ ! -f "$cache/kernel.name" ]; then
    local name
    name=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n -E 's/^ *Depends: (linux-image-[0-9][^ ]*)$/\1/p' | head -n 1)
    [ -n "$name" ] || skip "apt-cache does not know linux-image-amd64 (run apt-get update)"
    rm -rf "$cache/debs" "$cache/root"
    mkdir -p "$cache/debs" "$cache/root"
    (cd "$cache/debs" && apt-get download "$name" can-utils) >"$cache/download.log" 2>&1 ||
      skip "apt-get download $name can-utils failed (no access to the Debian archive?): $(tail -n 1 "$cache/download.log")"
    for deb in "$cache"/debs/*.deb; do dpkg -x "$deb" "$cache/root" || skip "dpkg -x $deb failed"; done
    rm -rf "$cache/debs"
    echo "$name" >"$cache/kernel.name"
  fi
}
fetch
kname=$(cat "$cache/kernel.name")
kver=${kname#linux-image-}
vmlinuz=$cache/root/boot/vmlinuz-$kver
mods=$cache/root/lib/modules/$kver/kernel
[ -f "$vmlinuz" ] || skip "$vmlinuz missing in the cache (rm -rf $cache to fetch again)"

# The initramfs.
root=$out/initramfs
mkdir -p "$root"/{bin,sbin,lib/modules,dev,proc,sys,tmp,work,fw}
cp "$(command -v busybox)" "$root/bin/busybox"
for m in net/can/can.ko net/can/can-raw.ko drivers/net/can/dev/can-dev.ko drivers/net/can/vcan.ko \
         drivers/net/can/slcan/slcan.ko net/sched/sch_tbf.ko; do
  [ -f "$mods/$m" ] || skip "kernel $kver has no $m"
  cp "$mods/$m" "$root/lib/modules/"
done
programs=("$cache/root/usr/bin/candump" "$cache/root/usr/bin/cansend" "$cache/root/usr/bin/cangen"
          "$cache/root/usr/bin/slcand")
cp "${programs[@]}" "$root/bin/"
# iproute2's tc (busybox's cannot set up tbf; the guest calls it by its full path, because
# busybox's shell prefers its own applets).
mkdir -p "$root/usr/sbin"
cp "$(command -v tc)" "$root/usr/sbin/tc"
programs+=("$(command -v tc)")
cp "$twin" "$root/bin/rtcanboot-twin"
cp "$cli" "$root/bin/rtcanboot"
strip --strip-debug "$root/bin/rtcanboot-twin" "$root/bin/rtcanboot" 2>/dev/null || true
# Shared libraries (and the dynamic loader) of every program, at their host paths.
for p in "${programs[@]}" "$twin" "$cli"; do
  ldd "$p" 2>/dev/null | sed -n -E 's/.*=> (\/[^ ]+).*/\1/p; s/^[[:space:]]*(\/[^ ]+) \(0x.*/\1/p'
done | sort -u | while read -r lib; do
  cp -L --parents "$lib" "$root/" 2>/dev/null || cp -L "$lib" "$root/lib/"
done
cp "$bootloader" "$app" "$root/fw/"
cp "$here/guest/init" "$root/init"
cp "$here/guest/tests.sh" "$root/tests.sh"
chmod +x "$root/init"
echo "$only" >"$root/only"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initramfs.gz" || { echo "FAIL: cpio"; exit 1; }

# Boot. ttyS0: console (kernel and test chatter); ttyS1: results, framed by @@ lines.
echo "booting $kname under qemu (TCG) with $(du -h "$out/initramfs.gz" | cut -f1) of initramfs"
start=$(date +%s)
timeout -k 10 "$vm_timeout" qemu-system-x86_64 -accel tcg -nic none -nodefaults -no-user-config -display none \
  -m 2048M -smp 2 -no-reboot -kernel "$vmlinuz" -initrd "$out/initramfs.gz" \
  -append "console=ttyS0 quiet panic=-1 rdinit=/init no_timer_check" \
  -serial "file:$out/console.log" -serial "file:$out/serial.txt"
qrc=$?
echo "qemu exited with $qrc after $(( $(date +%s) - start )) s"
[ $qrc -eq 124 ] && echo "FAIL: the VM did not power off within $vm_timeout s (console: $out/console.log)"

# Split the serial output: "@@BEGIN NAME", log lines, "@@FILE NAME FILE" + base64 of a gzip,
# "@@END NAME RC"; "@@DONE" once every test ran.
python3 - "$out/serial.txt" "$out/results" <<'PY'
import base64, gzip, os, sys
text = open(sys.argv[1], 'rb').read().decode('utf-8', 'replace').replace('\r', '')
res = sys.argv[2]
name, log, attach, blob = None, [], None, []
for line in text.split('\n'):
    if attach is not None:
        if line == '@@ENDFILE':
            data = base64.b64decode(''.join(blob))
            open(os.path.join(res, attach), 'wb').write(gzip.decompress(data))
            attach, blob = None, []
        else:
            blob.append(line)
        continue
    if line.startswith('@@BEGIN '):
        name, log = line.split()[1], []
    elif line.startswith('@@FILE ') and name:
        attach = name + '.' + line.split()[2]
    elif line.startswith('@@END ') and name:
        rc = line.split()[2]
        open(os.path.join(res, name + '.log'), 'w').write('\n'.join(log) + '\n')
        open(os.path.join(res, name + '.rc'), 'w').write(rc + '\n')
        name = None
    elif line.startswith('@@DONE'):
        open(os.path.join(res, 'DONE'), 'w').write(line + '\n')
    elif name:
        log.append(line)
PY
if [ ! -f "$out/results/DONE" ]; then
  echo "FAIL: the tests in the VM did not finish; last console lines:"
  tail -n 30 "$out/console.log"
  exit 1
fi
grep -h . "$out/results/DONE"
exit 0
