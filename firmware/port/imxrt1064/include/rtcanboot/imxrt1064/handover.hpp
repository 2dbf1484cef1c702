// What crosses from the application to the bootloader and back.
//
// The entry request crosses a warm reset (SYSRESETREQ). Which resets keep SRC_GPRs and SNVS
// LPGPRs is unconfirmed (fact sheet §6.2, §6.3, §9 items 6, 7, 16), so the application writes it
// to three carriers and the bootloader takes it from any of them (docs/twin.md "Readings"):
//   SRC_GPR5 (0x400F_8030)  kEntryRequestMagic (GPR1/2/9/10 are left alone: the ROM uses them)
//   SNVS LPGPR0 (0x400D_4100) kEntryRequestMagic
//   DTCM mailbox (the last 8 bytes of the default DTCM, 0x2001_FFF8): kEntryRequestMagic and
//                           its complement. RAM is not cleared by SYSRESETREQ (§6.4); the
//                           bootloader's linker script keeps these 8 bytes out of its own RAM.
// The request is lost only if all three are cleared (then the application starts again; the
// master sees its boot-up, not the bootloader's). A second magic, kSelfTestRequestMagic, in the
// same carriers asks the bootloader to run its bring-up self-test (docs/bring-up.md); which
// carriers kept it is what the self-test reports about SRC_GPR and SNVS LPGPR over a reset.
//
// The hand-over goes the other way without a reset (the bootloader jumps), in SRC_GPRs:
//   SRC_GPR6 (0x400F_8034)  handover word 0, written by the bootloader just before the jump:
//                           bits 31:24 0xA5 tag, 23:16 node-ID, 15:0 bit rate in kbit/s.
//   SRC_GPR7 (0x400F_8038)  handover word 1: bits 31:24 check byte, 23:0 bootloader version
//                           (major << 16 | minor << 8 | patch). Check byte = bitwise NOT of the
//                           8-bit sum of GPR6's four bytes and GPR7's three low bytes.
//   SRC_GPR8 (0x400F_803C)  software ID of the installed image (payload CRC-32, 0x1F56:1)
//   SRC_GPR4 (0x400F_802C)  image version from the container header (0x5F00:6)
//                           GPR8 and GPR4 are meaningful only when GPR6/GPR7 decode.
// The bootloader clears GPR6/GPR7 at start, so an application started any other way (debugger,
// no bootloader) sees no handover.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "rtcanboot/imxrt1064/registers.hpp"

namespace rtcanboot::imxrt1064::handover {

inline constexpr std::uint32_t kEntryRequestMagic = 0xB007'10AD;
inline constexpr std::uint32_t kSelfTestRequestMagic = 0x5E1F'7E57;
// An entry request that also owes the SDO answer to 0x1F51:1 = 0 (stop): this value | node-ID
// (1..127) in every carrier. The bootloader sends the answer as that node right after its boot-up
// message, when it serves the next request (docs/canopen.md, "What a master may expect").
inline constexpr std::uint32_t kEntryAnswerStopBase = 0xB007'5100;
inline constexpr Address kEntryRequestRegister = src::kGpr5;
inline constexpr Address kEntryRequestSnvs = snvs::kLpgpr0;
inline constexpr Address kEntryRequestMailbox = 0x2001'FFF8;  // two words: magic, ~magic
inline constexpr Address kWord0Register = src::kGpr6;
inline constexpr Address kWord1Register = src::kGpr7;
inline constexpr Address kSoftwareIdRegister = src::gpr(8);
inline constexpr Address kImageVersionRegister = src::gpr(4);
inline constexpr std::uint32_t kTag = 0xA5;

struct Info {
  std::uint8_t node_id = 0;
  std::uint32_t bitrate = 0;             // bit/s (a multiple of 1000)
  std::uint32_t bootloader_version = 0;  // major << 16 | minor << 8 | patch
  std::uint32_t software_id = 0;         // payload CRC-32 of the installed image
  std::uint32_t image_version = 0;
};

constexpr std::uint8_t byte_sum(std::uint32_t value, int bytes) {
  std::uint32_t sum = 0;
  for (int i = 0; i < bytes; ++i) sum += (value >> (8 * i)) & 0xFF;
  return static_cast<std::uint8_t>(sum);
}

constexpr std::uint32_t encode_word0(const Info& info) {
  return (kTag << 24) | (std::uint32_t{info.node_id} << 16) | ((info.bitrate / 1000) & 0xFFFF);
}
constexpr std::uint32_t encode_word1(const Info& info, std::uint32_t word0) {
  const std::uint32_t version = info.bootloader_version & 0x00FF'FFFF;
  const std::uint8_t check =
      static_cast<std::uint8_t>(~(byte_sum(word0, 4) + byte_sum(version, 3)));
  return (std::uint32_t{check} << 24) | version;
}
constexpr bool decode(std::uint32_t word0, std::uint32_t word1, Info& out) {
  if ((word0 >> 24) != kTag) return false;
  const std::uint32_t version = word1 & 0x00FF'FFFF;
  const std::uint8_t check =
      static_cast<std::uint8_t>(~(byte_sum(word0, 4) + byte_sum(version, 3)));
  if ((word1 >> 24) != check) return false;
  out.node_id = static_cast<std::uint8_t>(word0 >> 16);
  out.bitrate = (word0 & 0xFFFF) * 1000;
  out.bootloader_version = version;
  return true;
}

static_assert([] {
  const Info info{5, 500'000, 0x000102, 0, 0};
  const std::uint32_t w0 = encode_word0(info);
  Info back{};
  return w0 == 0xA505'01F4 && decode(w0, encode_word1(info, w0), back) && back.node_id == 5 &&
         back.bitrate == 500'000 && back.bootloader_version == 0x102 && !decode(0, 0, back);
}());

inline void write(const Info& info) {
  const std::uint32_t word0 = encode_word0(info);
  reg32(kWord0Register) = word0;
  reg32(kWord1Register) = encode_word1(info, word0);
  reg32(kSoftwareIdRegister) = info.software_id;
  reg32(kImageVersionRegister) = info.image_version;
}
inline bool read(Info& out) {
  if (!decode(reg32(kWord0Register), reg32(kWord1Register), out)) return false;
  out.software_id = reg32(kSoftwareIdRegister);
  out.image_version = reg32(kImageVersionRegister);
  return true;
}
inline void clear() {
  reg32(kWord0Register) = 0;
  reg32(kWord1Register) = 0;
  reg32(kSoftwareIdRegister) = 0;
  reg32(kImageVersionRegister) = 0;
}

// The node-ID whose stop answer `value` owes; 0 for the plain request or anything else.
constexpr std::uint8_t answer_node_of(std::uint32_t value) {
  const std::uint32_t node = value & 0xFF;
  return (value & ~0xFFU) == kEntryAnswerStopBase && node >= 1 && node <= 127
             ? static_cast<std::uint8_t>(node)
             : 0;
}
constexpr bool is_entry_request(std::uint32_t value) {
  return value == kEntryRequestMagic || answer_node_of(value) != 0;
}
static_assert(answer_node_of(kEntryAnswerStopBase | 5) == 5 &&
              answer_node_of(kEntryAnswerStopBase) == 0 &&
              answer_node_of(kEntryRequestMagic) == 0 && is_entry_request(kEntryRequestMagic) &&
              !is_entry_request(kEntryAnswerStopBase | 128));

inline constexpr std::uint32_t kCarrierSrcGpr = 1U;
inline constexpr std::uint32_t kCarrierSnvs = 2U;
inline constexpr std::uint32_t kCarrierDtcm = 4U;

// Writes `value` (kEntryRequestMagic, kSelfTestRequestMagic or kEntryAnswerStopBase | node-ID)
// to all three carriers (then the caller resets).
inline void write_entry_value(std::uint32_t value) {
  reg32(kEntryRequestRegister) = value;
  reg32(kEntryRequestSnvs) = value;
  reg32(kEntryRequestMailbox) = value;
  reg32(kEntryRequestMailbox + 4) = ~value;
}

// Application side of the entry request. `answer_node` 1..127: the stop's SDO answer is owed and
// the bootloader sends it as that node.
inline void write_entry_request(std::uint8_t answer_node = 0) {
  write_entry_value(answer_node >= 1 && answer_node <= 127 ? kEntryAnswerStopBase | answer_node
                                                           : kEntryRequestMagic);
}

struct EntryRequest {
  std::uint32_t carriers = 0;    // kCarrier* bits that still held a request; 0 = no request
  bool self_test = false;        // a carrier asked for the bring-up self-test
  std::uint8_t answer_node = 0;  // the node-ID whose stop answer a carrier owes, 0 when none
};

// Bootloader side: what the carriers held over the reset; clears all three.
inline EntryRequest take_entry_request() {
  EntryRequest request;
  const std::uint32_t mailbox = reg32(kEntryRequestMailbox);
  const std::uint32_t values[3] = {reg32(kEntryRequestRegister), reg32(kEntryRequestSnvs),
                                   reg32(kEntryRequestMailbox + 4) == ~mailbox ? mailbox : 0};
  const std::uint32_t bits[3] = {kCarrierSrcGpr, kCarrierSnvs, kCarrierDtcm};
  for (int i = 0; i < 3; ++i) {
    const std::uint32_t value = values[i];
    if (!is_entry_request(value) && value != kSelfTestRequestMagic) continue;
    request.carriers |= bits[i];
    if (value == kSelfTestRequestMagic) request.self_test = true;
    if (request.answer_node == 0) request.answer_node = answer_node_of(value);
  }
  reg32(kEntryRequestRegister) = 0;
  reg32(kEntryRequestSnvs) = 0;
  reg32(kEntryRequestMailbox) = 0;
  reg32(kEntryRequestMailbox + 4) = 0;
  return request;
}

}  // namespace rtcanboot::imxrt1064::handover
