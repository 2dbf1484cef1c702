#!/usr/bin/env python3
"""Checks a `candump -L` log of CANopen traffic (tests/kernel): every frame well formed.

  check_candump.py LOG [--node N]... [--min-blocks N] [--excerpt FILE]

- identifiers are 11-bit, no RTR, only NMT (0x000, DLC 2), SDO (0x580/0x600 + node, DLC 8, as
  CiA 301 requires), heartbeat/boot-up (0x700 + node, DLC 1, a CiA 301 NMT state) and EMCY
  (0x080 + node, DLC 8);
- SDO block downloads: every sub-block's segments are numbered 1, 2, ... without a gap, it ends
  at the block size the server gave or at the segment with the 'c' (last) bit, and the server's
  acknowledge confirms the last sequence number; each block download ends with an end frame and
  its answer.
Prints a summary and an excerpt of the first block transfer.
"""
import argparse
import re
import sys

LINE = re.compile(r"^\((\d+\.\d+)\) (\S+) ([0-9A-F]+)#(R\d?|[0-9A-F]*)$")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--node", type=int, action="append", default=[])
    ap.add_argument("--min-blocks", type=int, default=1)
    ap.add_argument("--excerpt", default=None)
    a = ap.parse_args()
    nodes = set(a.node)
    errors = []
    frames = []
    for n, line in enumerate(open(a.log), 1):
        line = line.rstrip("\n")
        if not line:
            continue
        m = LINE.match(line)
        if not m:
            errors.append(f"line {n}: not a candump -L frame: {line!r}")
            continue
        ts, _iface, ident, data = m.groups()
        if len(ident) != 3:
            errors.append(f"line {n}: extended identifier {ident}: {line}")
            continue
        if data.startswith("R"):
            errors.append(f"line {n}: remote frame: {line}")
            continue
        if len(data) % 2:
            errors.append(f"line {n}: odd number of data digits: {line}")
            continue
        frames.append((n, float(ts), int(ident, 16), bytes.fromhex(data), line))
    # The log's line order is not always the bus order: the kernel loops each sent frame back to
    # candump through the sending CPU's receive backlog (af_can can_send(), netif_rx()), so when
    # the sender moves between CPUs two frames can reach candump swapped. Their timestamps are
    # taken in send order (seen under load: segments 119..122 logged as 121, 119, 120, 122).
    frames.sort(key=lambda frame: (frame[1], frame[0]))

    def node_of(cob, base):
        # Any node-ID: a scan probes all 127 and other nodes may be on the bus; --node only
        # selects NMT targets and the nodes whose block downloads must be present.
        node = cob - base
        return node if 1 <= node <= 127 else None

    # Per-frame rules.
    for n, _ts, cob, d, line in frames:
        if cob == 0x000:
            if len(d) != 2:
                errors.append(f"line {n}: NMT frame with DLC {len(d)}: {line}")
            elif d[0] not in (0x01, 0x02, 0x80, 0x81, 0x82) or (d[1] and nodes and d[1] not in nodes):
                errors.append(f"line {n}: unexpected NMT command: {line}")
        elif node_of(cob, 0x580) or node_of(cob, 0x600):
            if len(d) != 8:
                errors.append(f"line {n}: SDO frame with DLC {len(d)} (CiA 301: 8): {line}")
        elif node_of(cob, 0x700):
            if len(d) != 1 or d[0] not in (0x00, 0x04, 0x05, 0x7F):
                errors.append(f"line {n}: heartbeat/boot-up not DLC 1 with an NMT state: {line}")
        elif node_of(cob, 0x080):
            if len(d) != 8:
                errors.append(f"line {n}: EMCY with DLC {len(d)}: {line}")
        else:
            errors.append(f"line {n}: identifier 0x{cob:03X} does not belong to the exchange: {line}")

    # Block downloads, per node.
    blocks = segments = downloads = 0
    excerpt = []
    for node in sorted({c - 0x600 for _, _, c, _, _ in frames if 0x601 <= c <= 0x67F}):
        rx, tx = 0x600 + node, 0x580 + node
        sdo = [(n, cob, d, line) for n, _, cob, d, line in frames if cob in (rx, tx) and len(d) == 8]
        state, blksize, expect, last_seq, done = "idle", 0, 1, 0, False
        for n, cob, d, line in sdo:
            cs = d[0]
            if state == "idle":
                if cob == rx and (cs & 0xE1) == 0xC0:  # block download initiate
                    state = "initiate"
                    if not excerpt:
                        excerpt_start = n
                continue
            if state == "initiate":
                if cob == tx and (cs & 0xE3) == 0xA0:
                    blksize = d[4]
                    if not 1 <= blksize <= 127:
                        errors.append(f"line {n}: block size {blksize}: {line}")
                    state, expect = "sub-block", 1
                    downloads += 1
                elif cob == tx and cs == 0x80:
                    state = "idle"  # aborted by the server
                continue
            if state == "sub-block":
                if cob == rx:
                    seq, last = cs & 0x7F, bool(cs & 0x80)
                    if seq != expect:
                        errors.append(f"line {n}: segment {seq} where {expect} was due: {line}")
                    segments += 1
                    expect = seq + 1
                    last_seq = seq
                    done = last
                    if last or seq == blksize:
                        state = "ack"
                elif cob == tx and cs == 0x80:
                    state = "idle"
                elif cob == tx and cs == 0xA2:  # early acknowledge (lost segment): allowed
                    blocks += 1
                    blksize, expect = d[2], 1
                continue
            if state == "ack":
                if cob == tx and cs == 0xA2:
                    blocks += 1
                    if d[1] != last_seq:
                        errors.append(f"line {n}: acknowledge of {d[1]} after segment {last_seq}: {line}")
                    blksize, expect = d[2], 1
                    state = "end" if done and d[1] == last_seq else "sub-block"
                elif cob == tx and cs == 0x80:
                    state = "idle"
                elif cob == rx:
                    errors.append(f"line {n}: segment before the acknowledge: {line}")
                continue
            if state == "end":
                if cob == rx and (cs & 0xE3) == 0xC1:
                    state = "end-answer"
                elif cob == rx and cs == 0x80:
                    state = "idle"
                else:
                    errors.append(f"line {n}: expected the block download end: {line}")
                    state = "idle"
                continue
            if state == "end-answer":
                if cob == tx and cs == 0xA1:
                    state = "idle"
                else:
                    errors.append(f"line {n}: expected the answer to the block download end: {line}")
                    state = "idle"
        if state not in ("idle",):
            errors.append(f"node {node}: the log ends inside a block download ({state})")
        if not excerpt and downloads:
            lines = [f[4] for f in frames if f[0] >= excerpt_start]
            excerpt = lines[:12]
    for node in nodes:
        if not any(f[2] == 0x600 + node and len(f[3]) == 8 and (f[3][0] & 0xE1) == 0xC0 for f in frames):
            errors.append(f"no block download to node {node}")
    if blocks < a.min_blocks:
        errors.append(f"only {blocks} acknowledged sub-blocks (expected at least {a.min_blocks})")
    print(f"candump check: {len(frames)} frames, {downloads} block downloads, {blocks} sub-blocks, "
          f"{segments} segments, {len(errors)} problems")
    if excerpt:
        print("first block transfer:")
        for line in excerpt:
            print("  " + line)
        if a.excerpt:
            open(a.excerpt, "w").write("\n".join(excerpt) + "\n")
    for e in errors[:30]:
        print("FAIL: " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
