#!/usr/bin/python3
"""python-can's socketcand interface joins the twin's CAN bus.

Usage: can_python_socketcand.py [--node-id N] [--timeout S] -- COMMAND [ARGS...]

Starts COMMAND, which must run a twin::can::SocketcandServer on 127.0.0.1 and print its port,
either as "PORT <n>" (can_socketcand_fixture) or as "socketcand on 127.0.0.1:<n>" (the
rtcanboot-twin CLI). Then connects with can.Bus(interface='socketcand'), expects the node's
boot-up frame 0x700+N #00, sends an SDO upload request for 0x1000:00 to 0x600+N and expects an
answer from 0x580+N about 0x1000:00. Bounded: every wait has a timeout and the command is
terminated at the end. Run with the system interpreter (/usr/bin/python3, Debian python3-can).
"""
import argparse
import queue
import re
import subprocess
import sys
import threading
import time

import can

PORT_PATTERNS = [re.compile(r"^PORT (\d+)"), re.compile(r"socketcand on [0-9.]+:(\d+)")]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--node-id", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    node = args.node_id

    proc = subprocess.Popen(args.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: "queue.Queue[str]" = queue.Queue()
    output = []

    def reader():
        for line in proc.stdout:
            output.append(line)
            lines.put(line)

    reader_thread = threading.Thread(target=reader, daemon=True)
    reader_thread.start()
    try:
        deadline = time.monotonic() + args.timeout
        port = None
        while port is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if proc.poll() is not None:
                    break
                continue
            for pattern in PORT_PATTERNS:
                m = pattern.search(line)
                if m:
                    port = int(m.group(1))
        if port is None:
            print("FAIL: no socketcand port announced:\n" + "".join(output))
            return 1

        bus = can.Bus(interface="socketcand", host="127.0.0.1", port=port, channel="can0")
        try:
            boot = None
            while time.monotonic() < deadline:
                msg = bus.recv(timeout=0.5)
                if msg is not None and msg.arbitration_id == 0x700 + node:
                    boot = msg
                    break
            if boot is None or bytes(boot.data) != b"\x00":
                print(f"FAIL: expected boot-up 0x{0x700 + node:X}#00, got {boot}")
                return 1
            print(f"received boot-up: {boot}")
            bus.send(can.Message(arbitration_id=0x600 + node, is_extended_id=False,
                                 data=[0x40, 0x00, 0x10, 0x00, 0, 0, 0, 0]))
            reply = None
            while time.monotonic() < deadline:
                msg = bus.recv(timeout=0.5)
                if msg is not None and msg.arbitration_id == 0x580 + node:
                    reply = msg
                    break
            if reply is None or bytes(reply.data[1:4]) != b"\x00\x10\x00":
                print(f"FAIL: expected an SDO answer from 0x{0x580 + node:X} about 0x1000:00, got {reply}")
                return 1
            print(f"received answer: {reply}")
        finally:
            bus.shutdown()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=5)
        # The process has exited, but its last lines may still be in the pipe: read them all
        # before judging its output (under load the reader thread lags behind).
        reader_thread.join(timeout=5)
        text = "".join(output)
        if "PORT " in text and f"RX (" not in text:
            print("FAIL: the scripted device did not report the SDO request:\n" + text)
            return 1
        print("PASS")
        return 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
