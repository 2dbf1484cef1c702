#!/usr/bin/env python3
"""Writes the bootloader's key record (firmware/core/include/rtcanboot/key_record.hpp) as a C++
header from an Ed25519 public key in PEM (SubjectPublicKeyInfo, what `rtcanboot keygen` writes to
KEY.pub and `openssl pkey -pubout` prints).

    key_record.py KEY.pub MIN_SECURITY_COUNTER OUT.hpp

Only the Python standard library: the PEM's DER must be exactly the 44-byte Ed25519
SubjectPublicKeyInfo (RFC 8410): anything else is refused with a message, and the build stops.
"""
import base64
import sys
from pathlib import Path

# SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING (32 bytes) }
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def fail(message):
    sys.exit(f"key_record.py: {message}")


def public_key(path):
    try:
        text = Path(path).read_text()
    except OSError as error:
        fail(f"{path}: cannot read: {error.strerror}")
    begin, end = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"
    if begin not in text or end not in text:
        fail(f"{path}: not a PEM public key (expected {begin}; a private key must never be "
             "built into the bootloader)")
    body = text.split(begin, 1)[1].split(end, 1)[0]
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
    except ValueError:
        fail(f"{path}: the PEM body is not base64")
    if len(der) != 44 or not der.startswith(ED25519_SPKI_PREFIX):
        fail(f"{path}: not an Ed25519 public key (SubjectPublicKeyInfo of 44 bytes)")
    return der[12:]


def main():
    if len(sys.argv) != 4:
        fail("usage: key_record.py KEY.pub MIN_SECURITY_COUNTER OUT.hpp")
    key_path, counter_text, out_path = sys.argv[1:]
    key = public_key(key_path)
    try:
        counter = int(counter_text, 0)
    except ValueError:
        fail(f"minimum security counter '{counter_text}' is not a number")
    if not 0 <= counter <= 0xFFFFFFFF:
        fail(f"minimum security counter {counter} is outside 0..0xFFFFFFFF")
    key_bytes = ", ".join(f"0x{b:02x}" for b in key)
    text = f"""// Generated at build time by firmware/port/imxrt1064/cmake/key_record.py from
// {Path(key_path).name}. Do not edit: set RTCANBOOT_SIGNING_KEY instead.
#pragma once

#include "rtcanboot/key_record.hpp"

namespace rtcanboot::port {{

// Public key {key.hex()}
inline constexpr KeyRecord kBuildKeyRecord = {{kKeyRecordMagic, {{{key_bytes}}}, {counter}U}};

}}  // namespace rtcanboot::port
"""
    out = Path(out_path)
    if not out.exists() or out.read_text() != text:
        out.write_text(text)


if __name__ == "__main__":
    main()
