#!/usr/bin/python3
"""Checks of the built rtcanboot firmware images (stdlib only).

  check_images.py bootloader --elf E --bin B [--objdump O]
  check_images.py application --elf E --bin B
  check_images.py self-test --elf E --bin B      (corrupted copies must be rejected)

Bootloader: FCB at 0 (tag, geometry, LUT), IVT at 0x1000 (header, self, boot data, entry ->
vector table), boot data consistent, image inside 0x7000_0000-0x7001_FFFF, the .bin holds the
exact ITCM/DTCM load images, and nothing that runs after the reset stub (all code in ITCM, all
data in DTCM) branches to or references 0x6000_0000-0x7FFF_FFFF (relocations kept by
--emit-relocs, plus the disassembly when objdump is given).
Application: vector table at 0x7002_0000, SP in RAM, reset handler inside the application region,
no FCB, nothing at or above the records area 0x703F_0000.
"""
import argparse
import re
import struct
import subprocess
import sys

FLASH_BASE = 0x7000_0000
FLASH_SIZE = 0x40_0000
BOOTLOADER_SIZE = 0x2_0000
BOOTLOADER_BUDGET = 0x1_0000
APP_BASE = 0x7002_0000
RECORDS = 0x703F_0000
ITCM = (0x0000_0000, 0x0002_0000)
DTCM = (0x2000_0000, 0x2002_0000)
OCRAM = (0x2020_0000, 0x202C_0000)
# Both FlexSPI AHB windows: nothing after the copy may fetch or point there.
FORBIDDEN = (0x6000_0000, 0x8000_0000)
VECTOR_COUNT = 174
FCB_TAG = 0x4246_4346

SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4
SHT_SYMTAB, SHT_REL, SHT_NOBITS = 2, 9, 8
R_ARM_ABS32, R_ARM_TARGET1 = 2, 38
R_ARM_THM_CALL, R_ARM_THM_JUMP24 = 10, 30
R_ARM_CALL, R_ARM_JUMP24 = 28, 29


def inside(value, region):
    return region[0] <= value < region[1]


class Elf:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        if d[:4] != b"\x7fELF" or d[4] != 1 or d[5] != 1:
            raise ValueError(f"{path}: not a 32-bit little-endian ELF")
        (self.entry, phoff, shoff) = struct.unpack_from("<III", d, 0x18)
        (phentsize, phnum, shentsize, shnum, shstrndx) = struct.unpack_from("<HHHHH", d, 0x2A)
        self.segments = []
        for i in range(phnum):
            (ptype, offset, vaddr, paddr, filesz, memsz, flags, align) = struct.unpack_from(
                "<IIIIIIII", d, phoff + i * phentsize)
            self.segments.append((ptype, vaddr, paddr, filesz, memsz))
        self.sections = []
        for i in range(shnum):
            fields = struct.unpack_from("<IIIIIIIIII", d, shoff + i * shentsize)
            self.sections.append(dict(zip(
                ("name_off", "type", "flags", "addr", "offset", "size", "link", "info",
                 "align", "entsize"), fields)))
        names = self.sections[shstrndx]
        for s in self.sections:
            s["name"] = self._string(names["offset"] + s["name_off"])

    def _string(self, offset):
        end = self.data.index(b"\0", offset)
        return self.data[offset:end].decode()

    def section(self, name):
        for s in self.sections:
            if s["name"] == name:
                return s
        return None

    def contents(self, s):
        return self.data[s["offset"]:s["offset"] + s["size"]]

    def lma(self, s):
        for (ptype, vaddr, paddr, filesz, memsz) in self.segments:
            if ptype == 1 and vaddr <= s["addr"] < vaddr + max(memsz, 1) and s["size"]:
                return paddr + (s["addr"] - vaddr)
        return s["addr"]

    def symbols(self):
        out = []
        for s in self.sections:
            if s["type"] != SHT_SYMTAB:
                continue
            strtab = self.sections[s["link"]]
            for i in range(s["size"] // 16):
                (name, value, size, info, other, shndx) = struct.unpack_from(
                    "<IIIBBH", self.data, s["offset"] + 16 * i)
                out.append({"name": self._string(strtab["offset"] + name), "value": value,
                            "size": size, "type": info & 0xF, "shndx": shndx})
        return out

    def relocations(self):
        """(target section, offset in section, type, symbol) for every SHT_REL entry."""
        symbols = None
        for s in self.sections:
            if s["type"] != SHT_REL:
                continue
            if symbols is None:
                symbols = self.symbols()
            target = self.sections[s["info"]]
            for i in range(s["size"] // 8):
                (offset, info) = struct.unpack_from("<II", self.data, s["offset"] + 8 * i)
                yield target, offset, info & 0xFF, symbols[info >> 8] if (info >> 8) < len(symbols) else None


class Report:
    def __init__(self, title):
        self.title = title
        self.failures = []
        self.passes = 0

    def check(self, condition, message):
        if condition:
            self.passes += 1
        else:
            self.failures.append(message)
        return condition

    def finish(self, quiet=False):
        if not quiet:
            for f in self.failures:
                print(f"FAIL [{self.title}] {f}")
            print(f"{self.title}: {self.passes} checks passed, {len(self.failures)} failed")
        return not self.failures


def u32(data, offset):
    return struct.unpack_from("<I", data, offset)[0] if offset + 4 <= len(data) else None


def thumb_branch_target(place, hw1, hw2):
    s = (hw1 >> 10) & 1
    imm10 = hw1 & 0x3FF
    j1, j2 = (hw2 >> 13) & 1, (hw2 >> 11) & 1
    imm11 = hw2 & 0x7FF
    i1, i2 = (~(j1 ^ s)) & 1, (~(j2 ^ s)) & 1
    offset = (s << 24) | (i1 << 23) | (i2 << 22) | (imm10 << 12) | (imm11 << 1)
    if s:
        offset -= 1 << 25
    target = place + 4 + offset
    if not (hw2 >> 12) & 1:  # BLX: target is ARM state, word aligned
        target &= ~3
    return target & 0xFFFF_FFFF


def check_boot_header(binary, r):
    r.check(len(binary) <= BOOTLOADER_SIZE, f"image is {len(binary)} bytes, beyond 128 KiB")
    r.check(len(binary) <= BOOTLOADER_BUDGET, f"image is {len(binary)} bytes, beyond the 64 KiB budget")
    # FCB
    r.check(u32(binary, 0) == FCB_TAG, "FCB tag 'FCFB' missing at offset 0")
    version = u32(binary, 4) or 0
    r.check(version >> 24 == 0x56, f"FCB version {version:#x} does not start with 'V'")
    r.check(binary[0x44:0x46] == bytes([1, 4]), "FCB deviceType/sflashPadType not serial NOR, 4 pads")
    r.check(1 <= binary[0x46] <= 9, f"FCB serialClkFreq code {binary[0x46]} out of range")
    r.check(u32(binary, 0x50) == FLASH_SIZE, "FCB sflashA1Size is not 4 MiB")
    r.check(struct.unpack_from("<HH", binary, 0x7C) == (0, 0), "FCB busy bit not SR1 bit 0, active high")
    r.check(u32(binary, 0x1C0) == 256, "FCB pageSize is not 256")
    r.check(u32(binary, 0x1C4) == 0x1000, "FCB sectorSize is not 4 KiB")
    r.check(u32(binary, 0x1D0) == 0x1_0000, "FCB blockSize is not 64 KiB")
    lut = [u32(binary, 0x80 + 4 * i) for i in range(64)]
    expected = {0: 0x0A18_04EB, 1: 0x2604_3206, 4: 0x2404_0405, 12: 0x0000_0406, 20: 0x0818_0420,
                32: 0x0818_04D8, 36: 0x0818_0402, 37: 0x0000_2004, 40: 0x0818_0452}
    for index, word in expected.items():
        r.check(lut[index] == word, f"FCB LUT[{index}] = {lut[index]:#010x}, expected {word:#010x}")
    # IVT
    ivt = 0x1000
    header = u32(binary, ivt) or 0
    r.check(header & 0xFF == 0xD1, f"IVT tag {header & 0xFF:#x} is not 0xD1")
    r.check(((header >> 8) & 0xFF) << 8 | ((header >> 16) & 0xFF) == 0x20, "IVT length is not 32")
    r.check(header >> 24 in (0x40, 0x41, 0x43), f"IVT version {header >> 24:#x}")
    entry, _, dcd, boot_data, self_ptr, csf = (u32(binary, ivt + 4 * i) or 0 for i in range(1, 7))
    r.check(self_ptr == FLASH_BASE + ivt, f"IVT self {self_ptr:#x} is not 0x70001000")
    r.check(dcd == 0 and csf == 0, "IVT has a DCD or CSF (not used)")
    end = FLASH_BASE + len(binary)
    r.check(FLASH_BASE <= boot_data and boot_data + 16 <= end, "IVT boot data outside the image")
    if FLASH_BASE <= boot_data and boot_data + 16 <= end:
        start, size, plugin = (u32(binary, boot_data - FLASH_BASE + 4 * i) for i in range(3))
        r.check(start == FLASH_BASE, f"boot data start {start:#x} is not 0x70000000 (XIP)")
        r.check(len(binary) <= size <= BOOTLOADER_SIZE, f"boot data size {size:#x} does not cover the image within 128 KiB")
        r.check(plugin == 0, "boot data marks a plugin")
    r.check(FLASH_BASE <= entry and entry + 8 <= end and entry % 4 == 0,
            f"IVT entry {entry:#x} is not a vector table inside the image")
    if FLASH_BASE <= entry and entry + 8 <= end:
        sp = u32(binary, entry - FLASH_BASE)
        reset = u32(binary, entry - FLASH_BASE + 4)
        r.check(sp % 8 == 0 and (inside(sp - 1, DTCM) or inside(sp - 1, OCRAM)),
                f"initial SP {sp:#x} not in DTCM/OCRAM")
        r.check(reset & 1 and FLASH_BASE < reset < end, f"reset vector {reset:#x} not Thumb code inside the image")
        return reset
    return None


def check_bootloader(elf, binary, objdump, r):
    reset = check_boot_header(binary, r)
    if reset is not None:
        r.check(elf.entry == reset, f"ELF entry {elf.entry:#x} differs from the IVT's reset vector {reset:#x}")

    # Sections: executable ones in ITCM except the flash-resident reset stub; load images in the .bin.
    ram_sections = []
    for s in elf.sections:
        if not s["flags"] & SHF_ALLOC or s["size"] == 0:
            continue
        flash_resident = inside(s["addr"], (FLASH_BASE, FLASH_BASE + BOOTLOADER_SIZE))
        if s["flags"] & SHF_EXECINSTR:
            r.check(s["name"] == ".boot_stub" or inside(s["addr"], ITCM),
                    f"executable section {s['name']} at {s['addr']:#x} is not in ITCM")
        if not flash_resident:
            ram_sections.append(s)
            r.check(inside(s["addr"], ITCM) or inside(s["addr"], DTCM) or inside(s["addr"], OCRAM),
                    f"section {s['name']} at {s['addr']:#x} is neither flash nor ITCM/DTCM/OCRAM")
        if s["type"] != SHT_NOBITS:
            lma = elf.lma(s)
            r.check(FLASH_BASE <= lma and lma + s["size"] <= FLASH_BASE + BOOTLOADER_SIZE,
                    f"{s['name']} loads from {lma:#x}, outside the bootloader region")
            offset = lma - FLASH_BASE
            r.check(binary[offset:offset + s["size"]] == elf.contents(s),
                    f"{s['name']}: .bin bytes at {offset:#x} differ from the ELF section")

    # Functions: only the reset stub's symbols live in flash.
    for sym in elf.symbols():
        if sym["type"] == 2 and sym["shndx"] != 0 and sym["value"]:
            address = sym["value"] & ~1
            if inside(address, FORBIDDEN):
                r.check(elf.sections[sym["shndx"]]["name"] == ".boot_stub",
                        f"function {sym['name']} at {address:#x} is in flash")

    # References from RAM-resident code and data into the flash windows (kept by --emit-relocs).
    ram_names = {s["name"] for s in ram_sections}
    relocations = 0
    for target, offset, rtype, sym in elf.relocations():
        if target["name"] not in ram_names or target["type"] == SHT_NOBITS:
            continue
        relocations += 1
        place = offset if offset >= target["addr"] else target["addr"] + offset
        data = elf.contents(target)
        index = place - target["addr"]
        where = f"{target['name']}+{index:#x}" + (f" ({sym['name']})" if sym and sym["name"] else "")
        if rtype in (R_ARM_ABS32, R_ARM_TARGET1):
            value = u32(data, index)
            r.check(value is None or not inside(value & ~1, FORBIDDEN),
                    f"{where}: pointer {value:#x} into the QSPI flash window")
        elif rtype in (R_ARM_THM_CALL, R_ARM_THM_JUMP24):
            hw1, hw2 = struct.unpack_from("<HH", data, index)
            destination = thumb_branch_target(place, hw1, hw2)
            r.check(not inside(destination, FORBIDDEN), f"{where}: branch to {destination:#x} in flash")
        elif rtype in (R_ARM_CALL, R_ARM_JUMP24):
            r.check(False, f"{where}: ARM-state branch in Cortex-M code")
    r.check(relocations > 100, f"only {relocations} relocations found: link with --emit-relocs")

    # Disassembly: every direct branch target and literal-pool load of the ITCM code.
    if objdump:
        text = subprocess.run([objdump, "-d", "--no-show-raw-insn", "-j", ".itcm", elf.path],
                              check=True, capture_output=True, text=True).stdout
        branch = re.compile(r"^\s*[0-9a-f]+:\s+(b|bl|blx|b\.w|b\.n|cbz|cbnz|b[a-z]{2}(\.[nw])?)\s+(?:r\d+, )?([0-9a-f]+)\s+<")
        literal = re.compile(r"\[pc, #-?\d+\]\s+@ \(([0-9a-f]+)")
        branches = literals = 0
        for line in text.splitlines():
            m = branch.match(line)
            if m:
                branches += 1
                destination = int(m.group(3), 16)
                r.check(not inside(destination, FORBIDDEN), f"disassembly: {line.strip()}")
            m = literal.search(line)
            if m:
                literals += 1
                address = int(m.group(1), 16)
                r.check(inside(address, ITCM), f"literal outside ITCM: {line.strip()}")
        r.check(branches > 100, f"only {branches} branches parsed from the disassembly")


def check_application(elf, binary, r):
    r.check(len(binary) >= 4 * VECTOR_COUNT, "application image shorter than its vector table")
    r.check(APP_BASE + len(binary) <= RECORDS, "application image reaches the records area 0x703F_0000")
    r.check(u32(binary, 0) != FCB_TAG, "application carries an FCB")
    vectors = elf.section(".vectors")
    r.check(vectors is not None and vectors["addr"] == APP_BASE, "vector table section not at 0x7002_0000")
    sp, reset = u32(binary, 0), u32(binary, 4)
    r.check(sp % 8 == 0 and (inside(sp - 1, DTCM) or inside(sp - 1, OCRAM)), f"initial SP {sp:#x} not in DTCM/OCRAM")
    r.check(reset & 1 and APP_BASE < reset < APP_BASE + len(binary), f"reset handler {reset:#x} outside the application")
    r.check(elf.entry == reset, f"ELF entry {elf.entry:#x} differs from the reset vector {reset:#x}")
    for i in range(1, VECTOR_COUNT):
        handler = u32(binary, 4 * i)
        if handler:
            r.check(handler & 1 and APP_BASE < handler < APP_BASE + len(binary),
                    f"vector {i} = {handler:#x} outside the application")
    for s in elf.sections:
        if s["flags"] & SHF_ALLOC and s["type"] != SHT_NOBITS and s["size"]:
            lma = elf.lma(s)
            r.check(APP_BASE <= lma and lma + s["size"] <= RECORDS, f"{s['name']} loads at {lma:#x}, outside the application region")


def self_test(elf, binary, objdump):
    """Each corruption must make the bootloader check fail."""
    def mutate(offset, data):
        b = bytearray(binary)
        b[offset:offset + len(data)] = data
        return bytes(b)
    cases = {
        "FCB tag": mutate(0, b"XXXX"),
        "FCB page size": mutate(0x1C0, struct.pack("<I", 512)),
        "FCB read status LUT": mutate(0x80 + 16, struct.pack("<I", 0)),
        "IVT tag": mutate(0x1000, b"\xd2"),
        "IVT self": mutate(0x1014, struct.pack("<I", 0x7000_2000)),
        "IVT entry": mutate(0x1004, struct.pack("<I", 0x6000_0000)),
        "boot data start": mutate(0x1020, struct.pack("<I", 0x2000_0000)),
        "ITCM load image": mutate(len(binary) - 8, b"\xde\xad\xbe\xef"),
        "oversized": binary + b"\xff" * BOOTLOADER_SIZE,
    }
    ok = True
    for name, corrupted in cases.items():
        r = Report(f"self-test {name}")
        check_bootloader(elf, corrupted, None, r)
        rejected = not r.finish(quiet=True)
        print(f"self-test: corrupted {name}: {'rejected' if rejected else 'NOT rejected'}")
        ok &= rejected
    r = Report("self-test original")
    check_bootloader(elf, binary, objdump, r)
    ok &= r.finish()
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("bootloader", "application", "self-test"))
    parser.add_argument("--elf", required=True)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--objdump")
    args = parser.parse_args()
    try:
        elf = Elf(args.elf)
        elf.path = args.elf
        with open(args.bin, "rb") as f:
            binary = f.read()
    except (OSError, ValueError) as error:
        print(f"FAIL: {error} (build the rt1064 preset first)")
        return 1
    if args.kind == "self-test":
        return 0 if self_test(elf, binary, args.objdump) else 1
    r = Report(f"{args.kind} {args.bin}")
    if args.kind == "bootloader":
        check_bootloader(elf, binary, args.objdump, r)
    else:
        check_application(elf, binary, r)
    return 0 if r.finish() else 1


if __name__ == "__main__":
    sys.exit(main())
