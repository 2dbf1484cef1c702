#!/usr/bin/env python3
"""Writes the container test vectors from the format description in docs/image-format.md.

An independent implementation (zlib CRC-32, hashlib SHA-256, and for the signed container
Ed25519 from the Python `cryptography` package, which is OpenSSL): tests/core/image_format_test.cpp
checks that the C++ encoder produces exactly these bytes and that the parser (and, for the signed
one, the core's verifier) accepts them.
"""
import hashlib
import lzma
import struct
import zlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

MAGIC = 0x42435452
APP_ADDRESS = 0x70020000
VENDOR = 0x00000ABC
PRODUCT = 0x00010064


def payload_bytes(length, seed):
    # Vector table (SP = top of DTCM, reset handler = app + 8 | Thumb), then a counter pattern.
    head = struct.pack("<II", 0x20020000, (APP_ADDRESS + 8) | 1)
    body = bytes((seed + 7 * i) & 0xFF for i in range(length - 8))
    return head + body


# RFC 8032 section 7.1, TEST 1: a published secret key, for test vectors only.
TEST_SECRET_KEY = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
SIGNATURE_DOMAIN = b"RTCB-ED25519-V1\0"


def signed_container(payload, header_length, image_version, flags, security_counter):
    """The signature record (docs/security.md) first in the records area, then the header CRC."""
    unsigned = container(payload, header_length, image_version, flags)
    header = bytearray(unsigned[:header_length])
    key = Ed25519PrivateKey.from_private_bytes(TEST_SECRET_KEY)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    record_fields = struct.pack("<BBHI", 1, 0, 0, security_counter)
    # Not signed: the header length (bytes 6..7) and the sparse flag (flags bit 0).
    fixed = bytearray(header[:0x48])
    fixed[6:8] = b"\0\0"
    fixed[0x1C:0x20] = struct.pack("<I", struct.unpack_from("<I", fixed, 0x1C)[0] & ~1 & 0xFFFFFFFF)
    message = SIGNATURE_DOMAIN + bytes(fixed) + record_fields
    assert len(message) == 96
    record = struct.pack("<HH", 1, 104) + record_fields + public + key.sign(message)
    assert len(record) == 108
    header[0x48 : 0x48 + 108] = record
    header[header_length - 4 :] = struct.pack("<I", zlib.crc32(bytes(header[: header_length - 4])))
    return bytes(header) + payload


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


FLAG_COMPRESSED = 0x0002
# One raw LZMA1 stream per extent: lc 0, lp 1, pb 1, a 32 KiB dictionary, end marker (Python's
# lzma module is liblzma, as the host tool's compressor is).
LZMA1 = [{"id": lzma.FILTER_LZMA1, "preset": 9 | lzma.PRESET_EXTREME, "lc": 0, "lp": 1, "pb": 1,
          "dict_size": 32768}]


def lzma_stream(data):
    return lzma.compress(data, format=lzma.FORMAT_RAW, filters=LZMA1)


def compressed_container(payload, header_length, image_version, runs=None):
    """The plain (runs None) or sparse container with flags bit 1 and one stream per extent."""
    if runs is None:
        return container(payload, header_length, image_version, FLAG_COMPRESSED, b"",
                         lzma_stream(payload))
    record = struct.pack("<HH", RECORD_EXTENTS, 4 * len(runs))
    sent = b""
    for first, count in runs:
        record += struct.pack("<HH", first, count)
        sent += lzma_stream(payload[first * SECTOR : (first + count) * SECTOR])
    return container(payload, header_length, image_version, FLAG_SPARSE | FLAG_COMPRESSED,
                     record, sent)


VECTORS = {
    # name: (payload length, payload seed, header length, image version, flags)
    "container_minimal": (8, 0, 0x4C, 1, 0),
    "container_default": (64, 1, 128, 0x00010203, 0),
    "container_info_flags": (40, 2, 0x60, 0xFFFFFFFF, 0xA5A50000),
}

SIGNED_VECTORS = {
    # name: (payload length, payload seed, header length, image version, flags, security counter)
    "container_signed": (64, 3, 184, 0x00010400, 0, 5),
}

SPARSE_VECTORS = {
    # name: (payload length, payload seed, header length, image version, runs)
    # Sectors 0 and 2 of a 3-sector image whose last sector is partial (1808 bytes).
    "container_sparse": (10000, 3, 128, 0x00020000, [(0, 1), (2, 1)]),
    # No sector at all: the same image again.
    "container_sparse_empty": (10000, 3, 128, 0x00020000, []),
}

COMPRESSED_VECTORS = {
    # name: (payload length, payload seed, header length, image version, runs or None)
    "container_compressed": (10000, 4, 128, 0x00020000, None),
    # Sectors 0 and 2 of the same image, a stream each.
    "container_compressed_sparse": (10000, 4, 128, 0x00020000, [(0, 1), (2, 1)]),
}


def write(here, name, data):
    (here / f"{name}.bin").write_bytes(data)
    lines = [data[i : i + 16].hex(" ") for i in range(0, len(data), 16)]
    (here / f"{name}.hex").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    here = Path(__file__).parent
    for name, (length, seed, header_length, version, flags) in VECTORS.items():
        write(here, name, container(payload_bytes(length, seed), header_length, version, flags))
    for name, (length, seed, header_length, version, flags, counter) in SIGNED_VECTORS.items():
        data = signed_container(payload_bytes(length, seed), header_length, version, flags, counter)
        write(here, name, data)
    for name, (length, seed, header_length, version, runs) in SPARSE_VECTORS.items():
        write(here, name, sparse_container(payload_bytes(length, seed), header_length, version, runs))
    for name, (length, seed, header_length, version, runs) in COMPRESSED_VECTORS.items():
        payload = payload_bytes(length, seed)
        write(here, name, compressed_container(payload, header_length, version, runs))
