# Sourced by the demo bodies (demo.sh, demo-fleet.sh): the built tools, a scratch directory removed
# on exit together with the twin started into $twin_pid, a step banner, and a free local port for
# the twin's socketcand endpoint ($bus).
dist=build/dist
twin=$dist/bin/rtcanboot-twin
tool=$dist/bin/rtcanboot
bootloader=$dist/firmware/rtcanboot-bootloader.bin
app=$dist/firmware/example-app.elf

work=$(mktemp -d)
twin_pid=""
cleanup() {
  if [ -n "$twin_pid" ] && kill -0 "$twin_pid" 2>/dev/null; then
    kill "$twin_pid" 2>/dev/null || true
    wait "$twin_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
bus="socketcand://127.0.0.1:$port/can0"
