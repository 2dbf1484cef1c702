#!/usr/bin/python3
"""python-can's socketcand interface joins the twin's CAN bus.

Starts can_socketcand_fixture (a bus with a scripted device and a socketcand server on
127.0.0.1), connects with can.Bus(interface='socketcand'), expects the device's boot-up frame
0x701#00, sends an SDO request 0x601 and expects the answer 0x581. Bounded: every wait has a
timeout and the fixture is killed on failure. Run with the system interpreter (/usr/bin/python3),
which has Debian's python3-can.
"""
import subprocess
import sys

import can


def main() -> int:
    fixture = sys.argv[1]
    proc = subprocess.Popen([fixture, "--timeout-ms", "20000"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        if not line.startswith("PORT "):
            print(f"FAIL: fixture said {line!r}")
            return 1
        port = int(line.split()[1])
        bus = can.Bus(interface="socketcand", host="127.0.0.1", port=port, channel="can0")
        try:
            boot = bus.recv(timeout=5.0)
            if boot is None or boot.arbitration_id != 0x701 or bytes(boot.data) != b"\x00":
                print(f"FAIL: expected boot-up 0x701#00, got {boot}")
                return 1
            print(f"received boot-up: {boot}")
            bus.send(can.Message(arbitration_id=0x601, is_extended_id=False,
                                 data=[0x40, 0x00, 0x10, 0x00, 0, 0, 0, 0]))
            reply = None
            for _ in range(10):
                reply = bus.recv(timeout=1.0)
                if reply is not None:
                    break
            if reply is None or reply.arbitration_id != 0x581 or \
                    bytes(reply.data) != bytes([0x43, 0x00, 0x10, 0x00, 0x92, 0x01, 0x00, 0x00]):
                print(f"FAIL: expected 0x581#4300100092010000, got {reply}")
                return 1
            print(f"received answer: {reply}")
        finally:
            bus.shutdown()
        out, _ = proc.communicate(timeout=10)
        if "RX (" not in out or "601#4000100000000000" not in out:
            print(f"FAIL: the scripted device did not see 0x601: {out!r}")
            return 1
        if proc.returncode != 0:
            print(f"FAIL: fixture exit code {proc.returncode}")
            return 1
        print("PASS")
        return 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
