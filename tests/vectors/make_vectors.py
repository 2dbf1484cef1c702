#!/usr/bin/env python3
"""Writes the container test vectors from the format description in docs/image-format.md.

An independent implementation (zlib CRC-32, hashlib SHA-256): tests/core/image_format_test.cpp
checks that the C++ encoder produces exactly these bytes and that the parser accepts them.
"""
import hashlib
import struct
import zlib
from pathlib import Path

MAGIC = 0x42435452
APP_ADDRESS = 0x70020000
VENDOR = 0x00000ABC
PRODUCT = 0x00010064


def payload_bytes(length, seed):
    # Vector table (SP = top of DTCM, reset handler = app + 8 | Thumb), then a counter pattern.
    head = struct.pack("<II", 0x20020000, (APP_ADDRESS + 8) | 1)
    body = bytes((seed + 7 * i) & 0xFF for i in range(length - 8))
    return head + body


def container(payload, header_length, image_version, flags, records=b"", sent=None):
    fixed = struct.pack(
        "<IHHIIIIIII",
        MAGIC,
        1,
        header_length,
        APP_ADDRESS,
        len(payload),
        image_version,
        VENDOR,
        PRODUCT,
        flags,
        zlib.crc32(payload),
    )
    fixed += hashlib.sha256(payload).digest() + struct.pack("<I", 0)
    assert len(fixed) == 0x48
    header = fixed + records + bytes(header_length - 4 - len(fixed) - len(records))
    header += struct.pack("<I", zlib.crc32(header))
    return header + (payload if sent is None else sent)


SECTOR = 4096
FLAG_SPARSE = 0x0001
RECORD_EXTENTS = 0x0002


def sparse_container(payload, header_length, image_version, runs):
    """Header of the whole image, an extents record, then only the listed sectors' bytes."""
    record = struct.pack("<HH", RECORD_EXTENTS, 4 * len(runs))
    sent = b""
    for first, count in runs:
        record += struct.pack("<HH", first, count)
        sent += payload[first * SECTOR : (first + count) * SECTOR]
    return container(payload, header_length, image_version, FLAG_SPARSE, record, sent)


VECTORS = {
    # name: (payload length, payload seed, header length, image version, flags)
    "container_minimal": (8, 0, 0x4C, 1, 0),
    "container_default": (64, 1, 128, 0x00010203, 0),
    "container_info_flags": (40, 2, 0x60, 0xFFFFFFFF, 0xA5A50000),
}

SPARSE_VECTORS = {
    # name: (payload length, payload seed, header length, image version, runs)
    # Sectors 0 and 2 of a 3-sector image whose last sector is partial (1808 bytes).
    "container_sparse": (10000, 3, 128, 0x00020000, [(0, 1), (2, 1)]),
    # No sector at all: the same image again.
    "container_sparse_empty": (10000, 3, 128, 0x00020000, []),
}

if __name__ == "__main__":
    here = Path(__file__).parent
    made = {
        name: container(payload_bytes(length, seed), header_length, version, flags)
        for name, (length, seed, header_length, version, flags) in VECTORS.items()
    }
    for name, (length, seed, header_length, version, runs) in SPARSE_VECTORS.items():
        made[name] = sparse_container(payload_bytes(length, seed), header_length, version, runs)
    for name, data in made.items():
        (here / f"{name}.bin").write_bytes(data)
        lines = [data[i : i + 16].hex(" ") for i in range(0, len(data), 16)]
        (here / f"{name}.hex").write_text("\n".join(lines) + "\n")
